"""cycle: the BarkRNN collapse experiment. `User: speak Assistant:` then the cycle `woof arf
ruff grrr` repeated to n barks, n uniform in [min_barks, max_barks] (default 100..200), then
<EOS>. Each bark follows from the last; the only uncertainty is where <EOS> falls, and knowing
when to stop needs a count of 100+ tokens.

Samples are judged the two ways the BarkRNN fails: `stop_rate`, the share that stop inside the
trained length range, and `cycle_adherence`, the share of generated barks that are the right
bark for their position."""

from __future__ import annotations

from pydantic import Field

from barkbench.schema import ordered
from barkbench.tasks.common import Task, TaskSection, speak_sequences, stop_entropy
from barkbench.vocab import BARKS, EOS


class CycleConfig(TaskSection):
    name: str = "cycle"
    min_barks: int = Field(100, ge=1)
    max_barks: int = Field(200, ge=1)


def the_cycle(count: int, length: int, gen):
    import torch

    return torch.tensor(BARKS)[torch.arange(length) % 4].expand(count, -1)


def judge(cfg: CycleConfig, prompts, answers, expected) -> tuple[list[dict], dict]:
    verdicts, in_cycle, barks = [], 0, 0
    for answer in answers:
        body = answer[:-1] if answer and answer[-1] == EOS else answer
        follows = sum(tok == BARKS[i % 4] for i, tok in enumerate(body))
        stopped_in_range = answer[-1:] == [EOS] and cfg.min_barks <= len(body) <= cfg.max_barks
        verdicts.append(
            {"barks": len(body), "stopped_in_range": stopped_in_range, "cycle_adherence": follows / max(len(body), 1)}
        )
        in_cycle, barks = in_cycle + follows, barks + len(body)
    stop_rate = sum(v["stopped_in_range"] for v in verdicts) / max(len(answers), 1)
    return verdicts, {"stop_rate": stop_rate, "cycle_adherence": in_cycle / max(barks, 1)}


TASK = Task(
    config=CycleConfig,
    make=lambda cfg, count, gen: speak_sequences(cfg, count, gen, the_cycle),
    floor=lambda cfg: stop_entropy(cfg.min_barks, cfg.max_barks, 0.0),
    longest=lambda cfg: cfg.max_barks + 4,
    checks=(ordered("task", "min_barks", "max_barks"),),
    judge=judge,
    sample_figures={"stop_rate": "stop rate (ends in range)", "cycle_adherence": "cycle adherence"},
)
