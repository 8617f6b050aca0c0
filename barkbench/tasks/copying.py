"""copy: sequence to sequence. `User: <n barks> speak Assistant:` then the same n barks in order
and <EOS>, n uniform in [min_length, max_length]. The prompt determines the answer, so the floor
is 0. Accuracy is bucketed by source length n: how much one fixed-size state must carry.
(The file is not called copy.py, which would shadow the standard library's copy.)"""

from __future__ import annotations

from pydantic import Field

from barkbench.schema import ordered
from barkbench.tasks.common import Buckets, Dataset, Task, TaskSection, exact_answers
from barkbench.vocab import ASSISTANT, BARKS, EOS, PAD, SPEAK, USER

BUCKET = 8  # source lengths 1-8, 9-16, ...: fine enough to see a fall, coarse enough to fill each
READABLE_LENGTH = 16  # `inspect` draws a source this long at most, so every token label stays legible


class CopyConfig(TaskSection):
    name: str = "copy"
    min_length: int = Field(1, ge=1)
    max_length: int = Field(16, ge=1)


def lay_out(cfg, count: int, gen, reverse: bool) -> Dataset:
    """`User: <n barks> speak Assistant:` then the barks, in order or reversed, and <EOS>."""
    import torch

    n = torch.randint(cfg.min_length, cfg.max_length + 1, (count,), generator=gen)[:, None]
    source = torch.tensor(BARKS)[torch.randint(0, 4, (count, cfg.max_length), generator=gen)]
    width = 2 * cfg.max_length + 4
    cols = torch.arange(width)[None, :]
    start = n + 3  # the first answer token, after `speak Assistant:`
    j = (cols - start).clamp(0, cfg.max_length - 1)  # answer token j copies source token j (or n - 1 - j)
    at = (n - 1 - j).clamp(0, cfg.max_length - 1) if reverse else j
    tokens = torch.full((count, width), PAD, dtype=torch.long)
    tokens[:, 0] = USER
    from_source = (cols - 1).clamp(0, cfg.max_length - 1).expand(count, -1)  # gather does not broadcast
    tokens = torch.where((cols >= 1) & (cols <= n), source.gather(1, from_source), tokens)
    tokens = torch.where(cols == n + 1, SPEAK, tokens)
    tokens = torch.where(cols == n + 2, ASSISTANT, tokens)
    in_answer = (cols >= start) & (cols < start + n)
    tokens = torch.where(in_answer, source.gather(1, at), tokens)
    tokens = torch.where(cols == start + n, EOS, tokens)
    length = torch.where(in_answer, n.expand(-1, width), -1)
    return Dataset(tokens=tokens, answer_start=start[:, 0], bucket=length)


def length_bucket(n: int) -> str:
    low = (int(n) - 1) // BUCKET * BUCKET + 1
    return f"{low}-{low + BUCKET - 1}"


def readable(cfg: CopyConfig) -> CopyConfig:
    longest = min(cfg.max_length, READABLE_LENGTH)
    return cfg.model_copy(update={"min_length": min(cfg.min_length, longest), "max_length": longest})


def task(reverse: bool, config: type[TaskSection]) -> Task:
    """copy, or with reverse=True the reverse task, which shares everything but the order."""
    return Task(
        config=config,
        make=lambda cfg, count, gen: lay_out(cfg, count, gen, reverse),
        floor=lambda cfg: 0.0,
        longest=lambda cfg: 2 * cfg.max_length + 4,
        checks=(ordered("task", "min_length", "max_length"),),
        buckets=Buckets(
            name="length",
            label=length_bucket,
            values=lambda cfg: range(cfg.min_length, cfg.max_length + 1),
            keys=("min_length", "max_length"),
            axis="source length n (barks to carry)",
        ),
        judge=exact_answers,
        readable=readable,
        message=lambda cfg, tokens, start: (1, start - 3),  # the source barks
    )


TASK = task(reverse=False, config=CopyConfig)
