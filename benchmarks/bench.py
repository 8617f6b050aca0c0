"""`make bench`: training and generation speed of every model family, each against a reference
measured in the same run.

1. Training tokens/s on the echo task of configs/echo_gpt.yaml, every model at its family's
   default sizes, against the family's reference (the same computation written the textbook
   way: the seed's nn.TransformerEncoderLayer GPT; a Python loop of RNN cells). Target: >= 1.1x.
2. Generation tokens/s for 200 new tokens with the model's state (key/value cache, hidden
   state) against re-running the whole sequence at every step, for 1 and 8 samples at once.
   Target: >= 5x.
3. The families with a parallel training form (the modern recurrences): training tokens/s at
   sequence length 256 on 2 threads against the same model trained through its recurrence,
   one token at a time (target: >= 5x), and against gpt at the same width.
4. The tanh RNN's and the GRU's scans (barkbench/models/recurrent/scan.py, what BarkRNN trains
   with on a CPU) against PyTorch's own nn.RNN and nn.GRU with the same weights: forward and
   backward of one layer on 1 thread, at the shapes of long_context's gap 256 and of mqar.

Rounds of each pair are interleaved and the median kept, so drift in the machine's speed
hits both sides alike. Results go to the terminal and to runs/bench.json.

    python benchmarks/bench.py [training] [generation] [recurrence] [scans]   # default: all four
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from rich.table import Table

from barkbench.config import load_config
from barkbench.display import out
from barkbench.evaluate import answer_batch, answer_loss
from barkbench.locate import SHIPPED
from barkbench.models import MODELS, build_model, count_params
from barkbench.models.recurrent.scan import recur
from barkbench.sample import generate
from barkbench.tasks import make_splits
from barkbench.vocab import EOS, PAD, SPEAK_PROMPT, encode

CONFIG = SHIPPED / "echo_gpt.yaml"
ROUNDS, STEPS_PER_ROUND, WARMUP = 7, 20, 3
TRAIN_TARGET, GENERATION_TARGET = 1.1, 5.0
PARTS = ("training", "generation", "recurrence", "scans")
# Part 3: echo sequences of exactly 2 x 8 + 236 + 4 = 256 tokens, 2 threads, fewer and shorter
# rounds (a recurrence read one token at a time takes seconds a step).
LONG = ["task.message_length=8", "task.min_gap=236", "task.max_gap=236"]
LONG_ROUNDS, LONG_STEPS, LONG_THREADS, RECURRENCE_TARGET = 3, 3, 2, 5.0
BASELINE = "gpt"  # the attention model every recurrence is set against, at the same width


def training_batches(cfg, steps: int) -> list:
    """`steps` batches of the config's task: (x, y, mask, answer_start) each."""
    train_set = make_splits(cfg.task.model_copy(update={"train_size": 2000, "val_size": 1, "test_size": 1}), 0).train
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(steps):
        idx = torch.randint(len(train_set), (cfg.train.batch_size,), generator=g)
        start = train_set.answer_start[idx]
        batches.append((*answer_batch(train_set.tokens[idx], start), start))
    return batches


def train_rate(model, batches, warmup: int = WARMUP) -> float:
    """Tokens per second of forward, backward and an AdamW step over the given batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()

    def step(x, y, mask, start):
        loss = answer_loss(model.teacher_forcing(x, start), y, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for batch in batches[:warmup]:
        step(*batch)
    tokens = sum(int((x != PAD).sum()) for x, *_ in batches)
    began = time.perf_counter()
    for batch in batches:
        step(*batch)
    return tokens / (time.perf_counter() - began)


def generation_rate(model, use_cache: bool, new_tokens: int = 200, samples: int = 1) -> float:
    prompt = encode(SPEAK_PROMPT)
    began = time.perf_counter()
    out_tokens = generate(model, prompt, samples, new_tokens, temperature=0, use_cache=use_cache)
    return sum(len(t) for t in out_tokens) / (time.perf_counter() - began)


def interleaved(measure_a, measure_b, rounds: int = ROUNDS) -> tuple[float, float]:
    a, b = [], []
    for _ in range(rounds):
        a.append(measure_a())
        b.append(measure_b())
    return statistics.median(a), statistics.median(b)


def ratio_cell(ours: float, reference: float, target: float) -> str:
    return f"{ours / reference:.2f}x (target >= {target}x)"


def training_and_generation(results: dict, parts) -> None:
    """Parts 1 and 2, family by family."""
    table = Table(title="barkbench: training speed on echo, every family at its default sizes (CPU)")
    gen = Table(title="barkbench: generating 200 new tokens, with the model's state against re-running (CPU)")
    for col in ("model", "params", "tokens/s", "reference tokens/s", "ratio"):
        table.add_column(col, justify="right")
    for col in ("model", "samples", "with state tokens/s", "re-running tokens/s", "ratio"):
        gen.add_column(col, justify="right")

    for name, family in MODELS.items():
        cfg = load_config(CONFIG, [f"model={json.dumps({'name': name, 'context_length': 256})}"])
        model = build_model(cfg.model, len(cfg.vocab))
        if "training" in parts:
            batches = training_batches(cfg, STEPS_PER_ROUND)
            row = {"params": count_params(model), "batch_size": cfg.train.batch_size}
            if family.reference is not None:
                reference = family.reference(cfg.model, len(cfg.vocab))
                ours, ref = interleaved(lambda: train_rate(model, batches), lambda: train_rate(reference, batches))  # noqa: B023
                row.update(
                    tokens_per_second=ours, reference_tokens_per_second=ref, ratio=ours / ref, target=TRAIN_TARGET
                )
            else:
                row["tokens_per_second"] = statistics.median(train_rate(model, batches) for _ in range(ROUNDS))
            results["training"][name] = row
            table.add_row(
                name,
                f"{row['params']:,}",
                f"{row['tokens_per_second']:,.0f}",
                f"{row['reference_tokens_per_second']:,.0f}" if "ratio" in row else "-",
                ratio_cell(row["tokens_per_second"], row["reference_tokens_per_second"], TRAIN_TARGET)
                if "ratio" in row
                else "-",
            )
        if "generation" not in parts:
            continue
        with torch.no_grad():  # an untrained model must not stop early: both sides make all 200 tokens
            model.head.bias[EOS] = -1e4
        # One sample is the worst case for the state: a step of these tiny models is mostly fixed
        # per-call cost that no cache removes. Eight is what a run samples at the end.
        for samples in (1, 8):
            cached, uncached = interleaved(
                lambda: generation_rate(model, True, samples=samples),  # noqa: B023
                lambda: generation_rate(model, False, samples=samples),  # noqa: B023
            )
            results["generation"].append(
                {
                    "model": name,
                    "new_tokens": 200,
                    "samples": samples,
                    "cached_tokens_per_second": cached,
                    "uncached_tokens_per_second": uncached,
                    "ratio": cached / uncached,
                    "target": GENERATION_TARGET,
                }
            )
            gen.add_row(
                name,
                str(samples),
                f"{cached:,.0f}",
                f"{uncached:,.0f}",
                ratio_cell(cached, uncached, GENERATION_TARGET),
            )
    for shown, part in ((table, "training"), (gen, "generation")):
        if part in parts:
            out.print(shown)


def recurrence(results: dict) -> None:
    """Part 3: each parallel training form against its own recurrence and against gpt."""
    threads = torch.get_num_threads()
    torch.set_num_threads(LONG_THREADS)
    table = Table(
        title=f"barkbench: training at sequence length 256 on {LONG_THREADS} threads, parallel form against "
        "the recurrence read one token at a time, and against gpt at the same width (CPU)"
    )
    for col in ("model", "params", "state bytes", "tokens/s", "recurrence tokens/s", "ratio", "gpt tokens/s", "vs gpt"):
        table.add_column(col, justify="right")
    baselines: dict = {}  # gpt's tokens/s by width and layers, measured once each
    for name, family in MODELS.items():
        if family.recurrence is None:
            continue
        cfg = load_config(CONFIG, [f"model={json.dumps({'name': name})}", *LONG])
        batches = training_batches(cfg, LONG_STEPS)
        model, stepwise = build_model(cfg.model, len(cfg.vocab)), family.recurrence(cfg.model, len(cfg.vocab))
        fast, slow = interleaved(
            lambda: train_rate(model, batches, warmup=1),  # noqa: B023
            lambda: train_rate(stepwise, batches[:1], warmup=0),  # noqa: B023
            rounds=LONG_ROUNDS,
        )
        width = (cfg.model.embedding_dim, cfg.model.layers)
        if width not in baselines:
            spec = {"name": BASELINE, "embedding_dim": width[0], "layers": width[1], "context_length": 256}
            gpt_cfg = load_config(CONFIG, [f"model={json.dumps(spec)}", *LONG])
            gpt = build_model(gpt_cfg.model, len(gpt_cfg.vocab))
            baselines[width] = statistics.median(train_rate(gpt, batches, warmup=1) for _ in range(LONG_ROUNDS))
        row = {
            "params": count_params(model),
            "state_bytes": model.state_bytes(),
            "sequence_length": int(batches[0][0].shape[1]) + 1,
            "batch_size": cfg.train.batch_size,
            "threads": LONG_THREADS,
            "tokens_per_second": fast,
            "recurrence_tokens_per_second": slow,
            "ratio": fast / slow,
            "target": RECURRENCE_TARGET,
            "gpt_tokens_per_second": baselines[width],
            "vs_gpt": fast / baselines[width],
        }
        results["recurrence"][name] = row
        table.add_row(
            name,
            f"{row['params']:,}",
            f"{row['state_bytes']:,}",
            f"{fast:,.0f}",
            f"{slow:,.0f}",
            ratio_cell(fast, slow, RECURRENCE_TARGET),
            f"{baselines[width]:,.0f}",
            f"{row['vs_gpt']:.2f}x",
        )
        out.print(f"  {name}: {row['ratio']:.2f}x its recurrence, {row['vs_gpt']:.2f}x gpt")
    torch.set_num_threads(threads)
    out.print(table)


# Part 4: (batch, positions, input width, hidden size) of one recurrent layer in the studies that train them
SCAN_SHAPES = {"long_context, gap 256": (32, 267, 32, 64), "mqar": (64, 27, 32, 64)}
SCAN_ROUNDS, SCAN_STEPS = 15, 5


def scans(results: dict) -> None:
    """Part 4: each scan against the torch module it replaces, forward and backward, 1 thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    table = Table(title="barkbench: one recurrent layer's forward and backward, the scan against torch's module (CPU)")
    for col in ("core", "shape", "scan ms", "torch ms", "speed-up"):
        table.add_column(col, justify="right")
    for core in (torch.nn.RNN, torch.nn.GRU):
        for shape_name, (batch, positions, width, hidden) in SCAN_SHAPES.items():
            module = core(width, hidden, batch_first=True)
            x = torch.randn(batch, positions, width, requires_grad=True)

            def rate(forward):
                began = time.perf_counter()
                for _ in range(SCAN_STEPS):
                    forward()[0].sum().backward()
                return SCAN_STEPS / (time.perf_counter() - began)

            ours, theirs = interleaved(
                lambda: rate(lambda: recur(module, x)),  # noqa: B023
                lambda: rate(lambda: module(x)),  # noqa: B023
                rounds=SCAN_ROUNDS,
            )
            name = core.__name__
            results["scans"][f"{name} {shape_name}"] = {
                "shape": [batch, positions, width, hidden],
                "scan_ms": 1e3 / ours,
                "torch_ms": 1e3 / theirs,
                "ratio": ours / theirs,
            }
            table.add_row(name, shape_name, f"{1e3 / ours:.2f}", f"{1e3 / theirs:.2f}", f"{ours / theirs:.2f}x")
    torch.set_num_threads(threads)
    out.print(table)


def main(parts=PARTS) -> None:
    torch.manual_seed(0)
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    results |= {"training": {}, "generation": [], "recurrence": {}, "scans": {}}
    if "training" in parts or "generation" in parts:
        training_and_generation(results, parts)
    if "recurrence" in parts:
        recurrence(results)
    if "scans" in parts:
        scans(results)
    Path("runs").mkdir(exist_ok=True)
    Path("runs/bench.json").write_text(json.dumps(results, indent=2) + "\n")
    out.print("wrote runs/bench.json")


if __name__ == "__main__":
    unknown = [a for a in sys.argv[1:] if a not in PARTS]
    if unknown:
        sys.exit(f"unknown part {unknown[0]!r}; the parts are {', '.join(PARTS)}")
    main(tuple(sys.argv[1:]) or PARTS)
