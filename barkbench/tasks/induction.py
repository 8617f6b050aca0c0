"""induction: induction heads (Olsson et al. 2022; Gu & Dao 2023, Table 3).

`User: <a body of L tokens> speak Assistant:` then x and <EOS>: the body is L random barks in
which one place holds the trigger `speak` followed by a bark x; the answer is what followed the
trigger last time. L is uniform in [min_length, max_length]. The floor is 0. Accuracy is
bucketed by distance, from x in the body to the answer; trained short and evaluated on longer
bodies (`eval: {max_length: ...}`), it measures length generalisation.
"""

from __future__ import annotations

from pydantic import Field

from barkbench.buckets import power_of_two_bucket
from barkbench.schema import ordered
from barkbench.tasks.common import Buckets, Dataset, Task, TaskSection, exact_answers
from barkbench.vocab import ASSISTANT, BARKS, EOS, PAD, SPEAK, USER

READABLE_LENGTH = 32  # `inspect` draws a body this long at most, so every token label stays legible


class InductionConfig(TaskSection):
    name: str = "induction"
    min_length: int = Field(16, ge=2, description="shortest body: the trigger, x and the barks around them")
    max_length: int = Field(64, ge=2, description="longest body")


def make(cfg: InductionConfig, count: int, gen) -> Dataset:
    import torch

    L = torch.randint(cfg.min_length, cfg.max_length + 1, (count, 1), generator=gen)
    p = (torch.rand(count, 1, generator=gen) * (L - 1)).long()  # the trigger's place in the body: 0..L-2
    width = cfg.max_length + 5
    cols = torch.arange(width)[None, :]
    body = torch.tensor(BARKS)[torch.randint(0, 4, (count, width), generator=gen)]
    tokens = torch.where((cols >= 1) & (cols <= L), body, PAD)  # the body is columns 1..L
    tokens = torch.where(cols == 0, USER, tokens)
    tokens = torch.where(cols == 1 + p, SPEAK, tokens)  # x, at 2 + p, is the bark after it
    x = tokens.gather(1, 2 + p)
    tokens = torch.where(cols == L + 1, SPEAK, tokens)
    tokens = torch.where(cols == L + 2, ASSISTANT, tokens)
    tokens = torch.where(cols == L + 3, x, tokens)
    tokens = torch.where(cols == L + 4, EOS, tokens)
    bucket = torch.where(cols == L + 3, L + 1 - p, -1)
    return Dataset(tokens, L[:, 0] + 3, bucket=bucket)


def trigger(cfg, tokens: list[int], start: int) -> tuple[int, int]:
    """The trigger and x: what the answer needs."""
    at = tokens.index(SPEAK)
    return at, at + 1


def readable(cfg: InductionConfig) -> InductionConfig:
    longest = min(cfg.max_length, READABLE_LENGTH)
    return cfg.model_copy(update={"min_length": min(cfg.min_length, longest), "max_length": longest})


TASK = Task(
    config=InductionConfig,
    make=make,
    floor=lambda cfg: 0.0,
    longest=lambda cfg: cfg.max_length + 5,
    checks=(ordered("task", "min_length", "max_length"),),
    buckets=Buckets(
        name="distance",
        label=power_of_two_bucket,
        # x at 2 + p is answered at L + 3, for p in 0..L-2
        values=lambda cfg: range(3, cfg.max_length + 2),
        keys=("min_length", "max_length"),
        axis="distance from the bark after the trigger to the answer (tokens)",
    ),
    judge=exact_answers,
    readable=readable,
    message=trigger,
)
