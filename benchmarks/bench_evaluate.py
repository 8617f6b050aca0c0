"""`make bench`, evaluation's part: what measuring costs, apart from the model.

1. evaluate() on 1,000 echo sequences (configs/echo_gpt.yaml's task: distances bucketed) with a
   model that costs nothing (its logits made up front: right at two thirds of the tokens), on one
   thread as a run evaluates, against evaluate as it was before (benchmarks/evaluate_before.py: two Python loops
   over the bucket values of every batch). The figures must be equal. Target: >= 3x.
2. One AdamW step of the echo_gpt GPT and of an LSTM, fused against unfused.

Rounds are interleaved and the median kept, so drift in the machine's speed hits both sides
alike. Results go to the terminal and to runs/bench-evaluate.json.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import torch
from evaluate_before import evaluate as evaluate_before
from rich.table import Table

from barkbench.config import load_config
from barkbench.display import out
from barkbench.evaluate import evaluate, shortest_first, to_batch
from barkbench.locate import SHIPPED
from barkbench.models import build_model
from barkbench.tasks import stream, task_of
from barkbench.vocab import EOS, PAD

CONFIG = SHIPPED / "echo_gpt.yaml"
ROUNDS, SEQUENCES, TARGET = 9, 1000, 3.0


class Replay(torch.nn.Module):
    """A model that costs nothing: the logits of every batch made once, up front (the next token
    read off the input, made wrong at a fixed third of the positions), then handed back in turn."""

    def __init__(self, data, batch_size: int, vocab_size: int, order):
        super().__init__()
        self.batches, self.turn = [], 0
        for i in range(0, len(data), batch_size):
            x, *_ = to_batch(data[order[i : i + batch_size]], "cpu")
            nxt = torch.cat([x[:, 1:], torch.full_like(x[:, :1], EOS)], 1)
            wrong = (torch.arange(x.shape[1]) % 3 == 0).expand_as(x)  # by position: the same in any batch
            nxt = torch.where(wrong & (nxt != PAD), (nxt + 1) % vocab_size, nxt)
            self.batches.append(torch.nn.functional.one_hot(nxt, vocab_size).float())

    def teacher_forcing(self, x, answer_start):
        logits = self.batches[self.turn % len(self.batches)]
        self.turn += 1
        return logits


def same_figures(now: dict, before: dict) -> bool:
    """Every figure equal, the loss to its last digits: the two sum it over the batches in another
    order (evaluate reads the shortest sequences first)."""
    apart = {k: v for k, v in now.items() if k != "loss"} != {k: v for k, v in before.items() if k != "loss"}
    return not apart and math.isclose(now["loss"], before["loss"], rel_tol=1e-6)  # float32 sums per batch


def seconds(measure) -> tuple[float, dict]:
    began = time.perf_counter()
    figures = measure()
    return time.perf_counter() - began, figures


def interleaved(a, b) -> tuple[float, float, dict, dict]:
    times_a, times_b = [], []
    for _ in range(ROUNDS):
        t, figures_a = seconds(a)
        times_a.append(t)
        t, figures_b = seconds(b)
        times_b.append(t)
    return statistics.median(times_a), statistics.median(times_b), figures_a, figures_b


def optimiser_step(model, fused: bool) -> float:
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused)
    for _ in range(5):
        opt.step()
    began = time.perf_counter()
    for _ in range(100):
        opt.step()
    return (time.perf_counter() - began) / 100


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # as a run evaluates (threads: 1), and steadier on a shared machine
    cfg = load_config(CONFIG)
    task = task_of(cfg.task)
    data = task.make(cfg.task, SEQUENCES, stream(0, "bench"))
    label, batch = task.buckets.label, cfg.train.eval_batch_size
    # each in the order it reads the data: evaluate's shortest first, evaluate_before's as they are
    model = Replay(data, batch, len(cfg.vocab), shortest_first(data))
    model_before = Replay(data, batch, len(cfg.vocab), torch.arange(len(data)))
    ours, before, now_figures, old_figures = interleaved(
        lambda: evaluate(model, data, batch, "cpu", label),
        lambda: evaluate_before(model_before, data, batch, "cpu", label),
    )
    if not same_figures(now_figures, old_figures):
        raise SystemExit(f"the figures differ:\nnow    {now_figures}\nbefore {old_figures}")
    results = {
        "threads": torch.get_num_threads(),
        "evaluate": {
            "sequences": SEQUENCES,
            "seconds": ours,
            "before_seconds": before,
            "ratio": before / ours,
            "target": TARGET,
            "figures_equal": True,
        },
        "optimiser": {},
    }
    table = Table(title=f"barkbench: evaluate on {SEQUENCES:,} echo sequences, buckets by distance (CPU)")
    for col in ("evaluate", "ms", "before ms", "speed-up", "figures"):
        table.add_column(col, justify="right")
    table.add_row(
        "by bincount",
        f"{ours * 1e3:.1f}",
        f"{before * 1e3:.1f}",
        f"{before / ours:.2f}x (target >= {TARGET}x)",
        "equal",
    )
    opt_table = Table(title="barkbench: one AdamW step (CPU)")
    for col in ("model", "fused ms", "unfused ms", "speed-up"):
        opt_table.add_column(col, justify="right")
    for name in ("gpt", "lstm"):
        net = build_model(load_config(CONFIG, [f"model.name={name}"]).model, len(cfg.vocab))
        unfused, fused = (statistics.median(optimiser_step(net, f) for _ in range(ROUNDS)) for f in (False, True))
        results["optimiser"][name] = {"fused_seconds": fused, "unfused_seconds": unfused, "ratio": unfused / fused}
        opt_table.add_row(name, f"{fused * 1e3:.3f}", f"{unfused * 1e3:.3f}", f"{unfused / fused:.2f}x")
    out.print(table)
    out.print(opt_table)
    path = Path("runs") / "bench-evaluate.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    out.print(f"wrote {path}", highlight=False)


if __name__ == "__main__":
    main()
