"""echo: long-range recall. `User: <m barks> speak <g random barks> Assistant:` then the same
m barks and <EOS>; m = message_length, the gap g uniform in [min_gap, max_gap]. The prompt
determines the answer, so the floor is 0. Accuracy is bucketed by distance: how many tokens
back the copied message token lies (m + g + 2 for every token of one message)."""

from __future__ import annotations

from pydantic import Field

from barkbench.buckets import power_of_two_bucket
from barkbench.schema import ordered
from barkbench.tasks.common import Buckets, Dataset, Task, TaskSection, exact_answers
from barkbench.vocab import ASSISTANT, BARKS, EOS, PAD, SPEAK, USER

READABLE_GAP = 24  # `inspect` draws a gap this long at most, so every token label stays legible


class EchoConfig(TaskSection):
    name: str = "echo"
    message_length: int = Field(8, ge=1)
    min_gap: int = Field(0, ge=0)
    max_gap: int = Field(128, ge=0)


def make(cfg: EchoConfig, count: int, gen) -> Dataset:
    import torch

    m = cfg.message_length
    gap = torch.randint(cfg.min_gap, cfg.max_gap + 1, (count,), generator=gen)
    message = torch.tensor(BARKS)[torch.randint(0, 4, (count, m), generator=gen)]
    noise = torch.tensor(BARKS)[torch.randint(0, 4, (count, max(cfg.max_gap, 1)), generator=gen)]

    width = 2 * m + cfg.max_gap + 4
    cols = torch.arange(width)[None, :]
    g = gap[:, None]
    assistant = m + 2 + g  # column of `Assistant:`
    tokens = torch.full((count, width), PAD, dtype=torch.long)
    tokens[:, 0] = USER
    tokens[:, 1 : m + 1] = message
    tokens[:, m + 1] = SPEAK
    in_gap = (cols >= m + 2) & (cols < assistant)
    noise_at = (cols - m - 2).clamp(0, noise.shape[1] - 1).expand(count, -1)  # gather does not broadcast
    tokens = torch.where(in_gap, noise.gather(1, noise_at), tokens)
    tokens = torch.where(cols == assistant, ASSISTANT, tokens)
    in_answer = (cols > assistant) & (cols <= assistant + m)
    tokens = torch.where(in_answer, message.gather(1, (cols - assistant - 1).clamp(0, m - 1)), tokens)
    tokens = torch.where(cols == assistant + m + 1, EOS, tokens)

    # Answer token j copies message token j, which sits m + g + 2 positions earlier.
    distance = torch.where(in_answer, m + g + 2, -1)
    return Dataset(tokens=tokens, answer_start=assistant[:, 0] + 1, bucket=distance)


def readable(cfg: EchoConfig) -> EchoConfig:
    gap = min(cfg.max_gap, READABLE_GAP)
    return cfg.model_copy(update={"min_gap": min(cfg.min_gap, gap), "max_gap": gap})


TASK = Task(
    config=EchoConfig,
    make=make,
    floor=lambda cfg: 0.0,
    longest=lambda cfg: 2 * cfg.message_length + cfg.max_gap + 4,
    checks=(ordered("task", "min_gap", "max_gap"),),
    buckets=Buckets(
        name="distance",
        label=power_of_two_bucket,
        values=lambda cfg: range(cfg.message_length + cfg.min_gap + 2, cfg.message_length + cfg.max_gap + 3),
        keys=("min_gap", "max_gap"),
        axis="distance from a message token to where it is repeated (tokens)",
    ),
    judge=exact_answers,
    readable=readable,
    message=lambda cfg, tokens, start: (1, cfg.message_length),
    capacity_keys=("message_length",),
)
