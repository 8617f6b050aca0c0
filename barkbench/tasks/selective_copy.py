"""selective_copy: selective copying (Gu & Dao 2023, Table 1).

`User: <a span of `length` tokens> speak Assistant:`: the span holds num_tokens barks at random
positions, in order, and the blank `_` everywhere else; the answer is those barks in order,
then <EOS>. Where a bark sits is random, so a model must pick the content out by what it is,
not by where: a time-invariant recurrence (Mamba with `selective: false`, Table 1's S4) cannot.
The floor is 0. Accuracy is bucketed by distance: from a bark in the span to where it is copied.
"""

from __future__ import annotations

from pydantic import Field

from barkbench.buckets import power_of_two_bucket
from barkbench.schema import ordered
from barkbench.tasks.common import Buckets, Dataset, Task, TaskSection, exact_answers
from barkbench.vocab import ASSISTANT, BARKS, EOS, SPEAK, USER, VOCAB

BLANK = len(VOCAB)  # the id of `_`, the task's own word
READABLE_LENGTH = 32  # `inspect` draws a span this long at most, so every token label stays legible


class SelectiveCopyConfig(TaskSection):
    name: str = "selective_copy"
    length: int = Field(64, ge=1, description="tokens in the span: the barks and the blanks")
    num_tokens: int = Field(8, ge=1, description="barks in the span, to copy in order")


def make(cfg: SelectiveCopyConfig, count: int, gen) -> Dataset:
    import torch

    L, N = cfg.length, cfg.num_tokens
    at = torch.rand(count, L, generator=gen).argsort(1)[:, :N].sort(1).values  # distinct, in order
    barks = torch.tensor(BARKS)[torch.randint(0, 4, (count, N), generator=gen)]
    tokens = torch.full((count, L + N + 4), BLANK, dtype=torch.long)
    tokens[:, 0] = USER
    tokens.scatter_(1, 1 + at, barks)  # the span is columns 1..L
    tokens[:, L + 1] = SPEAK
    tokens[:, L + 2] = ASSISTANT
    copied = torch.arange(L + 3, L + 3 + N)  # where bark j is copied
    tokens[:, copied] = barks
    tokens[:, L + 3 + N] = EOS
    bucket = torch.full_like(tokens, -1)
    bucket[:, copied] = copied - (1 + at)
    unit = torch.full_like(tokens, -1)
    unit[:, copied] = torch.arange(N)  # each bark comes from its own distance: its own unit
    return Dataset(tokens, torch.full((count,), L + 3), bucket=bucket, unit=unit)


def readable(cfg: SelectiveCopyConfig) -> SelectiveCopyConfig:
    return cfg.model_copy(update={"length": min(cfg.length, max(READABLE_LENGTH, cfg.num_tokens))})


TASK = Task(
    config=SelectiveCopyConfig,
    make=make,
    floor=lambda cfg: 0.0,
    longest=lambda cfg: cfg.length + cfg.num_tokens + 4,
    checks=(
        ordered("task", "num_tokens", "length", ": the barks sit in the span", "raise length or lower num_tokens"),
    ),
    vocab=lambda cfg: VOCAB + ("_",),
    unit="bark",
    buckets=Buckets(
        name="distance",
        label=power_of_two_bucket,
        # bark j sits at 1 + j at the earliest and L - N + 1 + j at the latest; it is copied at L + 3 + j
        values=lambda cfg: range(cfg.num_tokens + 2, cfg.length + 3),
        keys=("length",),
        axis="distance from a bark in the span to where it is copied (tokens)",
    ),
    judge=exact_answers,
    readable=readable,
    message=lambda cfg, tokens, start: (1, start - 3),  # the span
    capacity_keys=("num_tokens",),
)
