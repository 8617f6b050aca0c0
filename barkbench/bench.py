"""`make bench`: training and generation speed, each against a reference measured in the same run.

1. Training tokens/s of every model at the sizes the shipped echo configs use.
2. BarkGPT against the seed's construction at the same size: nn.TransformerEncoderLayer
   (post-norm, ReLU, batch_first) driven with an explicit causal mask. Target: >= 1.1x.
3. Generation tokens/s for 200 new tokens with the key/value cache against re-running the
   whole sequence at every step, for 1 and 8 samples at once. Target: >= 5x.

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
from torch import nn

from barkbench.config import load_config
from barkbench.evaluate import answer_batch, answer_loss
from barkbench.models import build_model, count_params
from barkbench.report import out
from barkbench.sample import generate
from barkbench.tasks import EOS, PAD, SPEAK_PROMPT, VOCAB, encode, make_splits

# (config, overrides): gru has no echo config of its own, so it runs at the LSTM's size.
CONFIGS = {
    "rnn": ("configs/echo_rnn.yaml", []),
    "lstm": ("configs/echo_lstm.yaml", []),
    "gru": ("configs/echo_lstm.yaml", ["model.name=gru"]),
    "gpt": ("configs/echo_gpt.yaml", []),
}
ROUNDS, STEPS_PER_ROUND, WARMUP = 7, 20, 3


class ReferenceGPT(nn.Module):
    """The seed's BarkGPT layers, made correct (batch_first and a causal mask) but otherwise as
    it built them: nn.TransformerEncoderLayer blocks. The speed baseline for our own block."""

    def __init__(self, cfg):
        super().__init__()
        self.tok = nn.Embedding(len(VOCAB), cfg.embedding_dim)
        self.pos = nn.Embedding(cfg.context_length, cfg.embedding_dim)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(cfg.embedding_dim, cfg.heads, cfg.ffn_dim, dropout=cfg.dropout, batch_first=True)
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, len(VOCAB))

    def forward(self, tokens, state=None):
        T = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(T, device=tokens.device))
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        return self.head(self.norm(x)), None


def train_rate(model, batches) -> float:
    """Tokens per second of forward, backward and an AdamW step over the given batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()

    def step(x, y, mask):
        loss = answer_loss(model(x)[0], y, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for x, y, mask in batches[:WARMUP]:
        step(x, y, mask)
    tokens = sum(int((x != PAD).sum()) for x, _, _ in batches)
    start = time.perf_counter()
    for x, y, mask in batches:
        step(x, y, mask)
    return tokens / (time.perf_counter() - start)


def generation_rate(model, use_cache: bool, new_tokens: int = 200, samples: int = 1) -> float:
    prompt = encode(SPEAK_PROMPT)
    start = time.perf_counter()
    out_tokens = generate(model, prompt, samples, new_tokens, temperature=0, use_cache=use_cache)
    return sum(len(t) for t in out_tokens) / (time.perf_counter() - start)


def interleaved(measure_a, measure_b) -> tuple[float, float]:
    a, b = [], []
    for _ in range(ROUNDS):
        a.append(measure_a())
        b.append(measure_b())
    return statistics.median(a), statistics.median(b)


def main() -> None:
    torch.manual_seed(0)
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__, "training": {}}
    table = Table(title="barkbench: training speed at the shipped echo sizes (CPU)")
    for col in ("model", "params", "tokens/s", "reference tokens/s", "ratio"):
        table.add_column(col, justify="right")

    for name, (path, overrides) in CONFIGS.items():
        cfg = load_config(path, overrides)
        train_set, _ = make_splits(cfg.task.model_copy(update={"train_size": 2000}), 0)
        g = torch.Generator().manual_seed(0)
        batches = []
        for _ in range(STEPS_PER_ROUND):
            idx = torch.randint(len(train_set), (cfg.train.batch_size,), generator=g)
            batches.append(answer_batch(train_set.tokens[idx], train_set.answer_start[idx]))
        model = build_model(cfg.model)
        row = {"params": count_params(model), "batch_size": cfg.train.batch_size}
        if name == "gpt":
            reference = ReferenceGPT(cfg.model)
            ours, ref = interleaved(
                lambda: train_rate(model, batches),  # noqa: B023 (called before the loop moves on)
                lambda: train_rate(reference, batches),  # noqa: B023
            )
            row.update(tokens_per_second=ours, reference_tokens_per_second=ref, ratio=ours / ref, target=1.1)
        else:
            row["tokens_per_second"] = statistics.median(train_rate(model, batches) for _ in range(ROUNDS))
        results["training"][name] = row
        table.add_row(
            name,
            f"{row['params']:,}",
            f"{row['tokens_per_second']:,.0f}",
            f"{row.get('reference_tokens_per_second', 0):,.0f}" if "ratio" in row else "-",
            f"{row['ratio']:.2f}x (target >= 1.1x)" if "ratio" in row else "-",
        )
    out.print(table)

    gpt = build_model(load_config(*CONFIGS["gpt"]).model)
    with torch.no_grad():  # an untrained model must not stop early: both sides make all 200 tokens
        gpt.head.bias[EOS] = -1e4
    gen = Table(title="barkbench: generating 200 new tokens with BarkGPT (echo size, CPU)")
    for col in ("samples", "with cache tokens/s", "re-running tokens/s", "ratio"):
        gen.add_column(col, justify="right")
    results["generation"] = []
    # One sample is the worst case for the cache: a step of this tiny model is mostly fixed
    # per-call cost that no cache removes. Eight is what a run samples at the end (sample.num_samples).
    for samples in (1, 8):
        cached, uncached = interleaved(
            lambda: generation_rate(gpt, True, samples=samples),  # noqa: B023
            lambda: generation_rate(gpt, False, samples=samples),  # noqa: B023
        )
        results["generation"].append(
            {
                "new_tokens": 200,
                "samples": samples,
                "cached_tokens_per_second": cached,
                "uncached_tokens_per_second": uncached,
                "ratio": cached / uncached,
                "target": 5.0,
            }
        )
        gen.add_row(str(samples), f"{cached:,.0f}", f"{uncached:,.0f}", f"{cached / uncached:.2f}x (target >= 5x)")
    out.print(gen)

    Path("runs").mkdir(exist_ok=True)
    Path("runs/bench.json").write_text(json.dumps(results, indent=2) + "\n")
    out.print("wrote runs/bench.json")


if __name__ == "__main__":
    main()
