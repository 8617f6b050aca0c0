"""`make bench`: training and generation speed of every model family, each against a reference
measured in the same run.

1. Training tokens/s on the echo task of configs/echo_gpt.yaml, every model at its family's
   default sizes, against the family's reference (the same computation written the textbook
   way: the seed's nn.TransformerEncoderLayer GPT; a Python loop of RNN cells). Target: >= 1.1x.
2. Generation tokens/s for 200 new tokens with the model's state (key/value cache, hidden
   state) against re-running the whole sequence at every step, for 1 and 8 samples at once.
   Target: >= 5x.

Rounds of each pair are interleaved and the median kept, so drift in the machine's speed
hits both sides alike. Results go to the terminal and to runs/bench.json.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
from rich.table import Table

from barkbench.config import load_config
from barkbench.display import out
from barkbench.evaluate import answer_batch, answer_loss
from barkbench.locate import SHIPPED
from barkbench.models import MODELS, build_model, count_params
from barkbench.sample import generate
from barkbench.tasks import make_splits
from barkbench.vocab import EOS, PAD, SPEAK_PROMPT, encode

CONFIG = SHIPPED / "echo_gpt.yaml"
ROUNDS, STEPS_PER_ROUND, WARMUP = 7, 20, 3
TRAIN_TARGET, GENERATION_TARGET = 1.1, 5.0


def train_rate(model, batches) -> float:
    """Tokens per second of forward, backward and an AdamW step over the given batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()

    def step(x, y, mask, start):
        loss = answer_loss(model.teacher_forcing(x, start), y, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for batch in batches[:WARMUP]:
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


def interleaved(measure_a, measure_b) -> tuple[float, float]:
    a, b = [], []
    for _ in range(ROUNDS):
        a.append(measure_a())
        b.append(measure_b())
    return statistics.median(a), statistics.median(b)


def ratio_cell(ours: float, reference: float, target: float) -> str:
    return f"{ours / reference:.2f}x (target >= {target}x)"


def main() -> None:
    torch.manual_seed(0)
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__, "training": {}, "generation": []}
    table = Table(title="barkbench: training speed on echo, every family at its default sizes (CPU)")
    gen = Table(title="barkbench: generating 200 new tokens, with the model's state against re-running (CPU)")
    for col in ("model", "params", "tokens/s", "reference tokens/s", "ratio"):
        table.add_column(col, justify="right")
    for col in ("model", "samples", "with state tokens/s", "re-running tokens/s", "ratio"):
        gen.add_column(col, justify="right")

    for name, family in MODELS.items():
        cfg = load_config(CONFIG, [f"model={json.dumps({'name': name, 'context_length': 256})}"])
        train_set = make_splits(
            cfg.task.model_copy(update={"train_size": 2000, "val_size": 1, "test_size": 1}), 0
        ).train
        g = torch.Generator().manual_seed(0)
        batches = []
        for _ in range(STEPS_PER_ROUND):
            idx = torch.randint(len(train_set), (cfg.train.batch_size,), generator=g)
            start = train_set.answer_start[idx]
            batches.append((*answer_batch(train_set.tokens[idx], start), start))
        model = build_model(cfg.model, len(cfg.vocab))
        row = {"params": count_params(model), "batch_size": cfg.train.batch_size}
        if family.reference is not None:
            reference = family.reference(cfg.model, len(cfg.vocab))
            ours, ref = interleaved(lambda: train_rate(model, batches), lambda: train_rate(reference, batches))  # noqa: B023
            row.update(tokens_per_second=ours, reference_tokens_per_second=ref, ratio=ours / ref, target=TRAIN_TARGET)
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
    out.print(table)
    out.print(gen)
    Path("runs").mkdir(exist_ok=True)
    Path("runs/bench.json").write_text(json.dumps(results, indent=2) + "\n")
    out.print("wrote runs/bench.json")


if __name__ == "__main__":
    main()
