"""mqar: multi-query associative recall (Arora et al. 2023, the zoology benchmark).

`User: k v k v ... speak Assistant:` holds num_pairs distinct keys, each followed by its value;
the answer `q v q v ... <EOS>` asks num_queries distinct keys of the prompt, in random order,
each followed by its value. The query keys are *given*: fed to the model, never predicted or
counted, so only the values (and <EOS>) are the answer's content. The prompt determines every
value, so the floor is 0; guessing a value is right 1 in num_values.

The queries sit in the answer, each right before the value it asks for, rather than all before
`Assistant:`: measured for this task in plain PyTorch, a 2-layer GPT learns the interleaved
layout (value accuracy 1.00 by step 1000) but neither it nor a GRU learned the other in 2000
steps. So the model reads one key and answers it at once, as zoology lays out its sequences.

Keys are the words k0..k{num_keys-1}, values v0..v{num_values-1}, after the bark vocabulary.
Accuracy is bucketed by distance: from a value in the prompt to where it is recalled.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field, model_validator

from barkbench.buckets import power_of_two_bucket
from barkbench.schema import ordered
from barkbench.tasks.common import Buckets, Dataset, Task, TaskSection, exact_answers
from barkbench.vocab import ASSISTANT, EOS, PAD, SPEAK, USER, VOCAB

READABLE_PAIRS = 12  # `inspect` draws this many pairs at most, so every token label stays legible


class MqarConfig(TaskSection):
    name: str = "mqar"
    num_keys: int = Field(64, ge=1, description="keys to draw the prompt's keys from: k0..")
    num_values: int = Field(64, ge=1, description="values to draw each key's value from: v0..")
    num_pairs: int = Field(8, ge=1, description="key-value pairs in the prompt, distinct keys")
    num_queries: Optional[int] = Field(None, ge=1, description="keys the answer asks for; default num_pairs")

    @model_validator(mode="after")
    def _default_queries(self):
        self.num_queries = self.num_queries or self.num_pairs
        return self


def vocab(cfg: MqarConfig) -> tuple[str, ...]:
    return VOCAB + tuple(f"k{i}" for i in range(cfg.num_keys)) + tuple(f"v{i}" for i in range(cfg.num_values))


def make(cfg: MqarConfig, count: int, gen) -> Dataset:
    import torch

    P, Q = cfg.num_pairs, cfg.num_queries
    key_ids, value_ids = len(VOCAB), len(VOCAB) + cfg.num_keys  # the first key's and value's ids
    keys = torch.rand(count, cfg.num_keys, generator=gen).argsort(1)[:, :P]  # distinct in a sequence
    values = torch.randint(0, cfg.num_values, (count, P), generator=gen)
    asked = torch.rand(count, P, generator=gen).argsort(1)[:, :Q]  # which pairs, in the order asked

    start = 2 * P + 3  # `User:`, the pairs, `speak`, `Assistant:`
    tokens = torch.full((count, start + 2 * Q + 1), PAD, dtype=torch.long)
    tokens[:, 0] = USER
    tokens[:, 1 : 2 * P + 1 : 2] = key_ids + keys  # pair i: its key at 1 + 2i, its value at 2 + 2i
    tokens[:, 2 : 2 * P + 2 : 2] = value_ids + values
    tokens[:, 2 * P + 1] = SPEAK
    tokens[:, 2 * P + 2] = ASSISTANT
    tokens[:, start : start + 2 * Q : 2] = key_ids + keys.gather(1, asked)  # query j at start + 2j ...
    tokens[:, start + 1 : start + 2 * Q : 2] = value_ids + values.gather(1, asked)  # ... its value after it
    tokens[:, start + 2 * Q] = EOS

    given = torch.zeros_like(tokens, dtype=torch.bool)
    given[:, start : start + 2 * Q : 2] = True
    answered = torch.arange(start + 1, start + 2 * Q, 2)  # where each value is recalled
    bucket = torch.full_like(tokens, -1)
    bucket[:, answered] = answered - (2 + 2 * asked)  # back to where the prompt gave it
    unit = torch.full_like(tokens, -1)
    unit[:, answered] = torch.arange(Q)  # exact match by bucket counts each query under its own
    return Dataset(tokens, torch.full((count,), start), bucket=bucket, given=given, unit=unit)


def readable(cfg: MqarConfig) -> MqarConfig:
    pairs = min(cfg.num_pairs, READABLE_PAIRS)
    return cfg.model_copy(update={"num_pairs": pairs, "num_queries": min(cfg.num_queries, pairs)})


TASK = Task(
    config=MqarConfig,
    make=make,
    floor=lambda cfg: 0.0,
    longest=lambda cfg: 2 * cfg.num_pairs + 2 * cfg.num_queries + 4,
    checks=(
        ordered("task", "num_pairs", "num_keys", ": a prompt's keys are distinct", "raise num_keys or lower num_pairs"),
        ordered(
            "task",
            "num_queries",
            "num_pairs",
            ": the answer asks distinct keys of the prompt",
            "lower num_queries or raise num_pairs",
        ),
    ),
    vocab=vocab,
    chance=lambda cfg: 1 / cfg.num_values,
    content="values",
    unit="query",
    given="the query keys",
    buckets=Buckets(
        name="distance",
        label=power_of_two_bucket,
        # query j (0-based) recalls pair i's value 2P + 2 + 2j - 2i tokens after the prompt gave it
        values=lambda cfg: range(4, 2 * cfg.num_pairs + 2 * cfg.num_queries + 1, 2),
        keys=(),
        axis="distance from a value in the prompt to where it is recalled (tokens)",
    ),
    judge=exact_answers,
    readable=readable,
    message=lambda cfg, tokens, start: (1, start - 3),  # the key-value pairs
    capacity_keys=("num_pairs",),
)
