"""barks: the original BarkGPT corpus. `User: speak Assistant:` then n random barks, n uniform
in [min_barks, max_barks], then <EOS>. The barks are random, so the floor is the answer's
entropy: a model that reaches it has learned that barks are uniform, and when to stop."""

from __future__ import annotations

import math

from pydantic import Field

from barkbench.schema import ordered
from barkbench.tasks.common import Task, TaskSection, speak_sequences, stop_entropy
from barkbench.vocab import BARKS


class BarksConfig(TaskSection):
    name: str = "barks"
    min_barks: int = Field(2, ge=1)
    max_barks: int = Field(10, ge=1)


def random_barks(count: int, length: int, gen):
    import torch

    return torch.tensor(BARKS)[torch.randint(0, 4, (count, length), generator=gen)]


TASK = Task(
    config=BarksConfig,
    make=lambda cfg, count, gen: speak_sequences(cfg, count, gen, random_barks),
    floor=lambda cfg: stop_entropy(cfg.min_barks, cfg.max_barks, math.log(4)),
    longest=lambda cfg: cfg.max_barks + 4,
    checks=(ordered("task", "min_barks", "max_barks"),),
)
