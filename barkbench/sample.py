"""Sampling from a model: temperature, top-k, greedy at temperature 0, stop at <EOS>."""

from __future__ import annotations

import torch

from barkbench.errors import BarkError
from barkbench.tasks import EOS, PAD


def pick(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """One token per row of [B, vocab] logits; never <PAD>, which only fills batches."""
    logits = logits.float().cpu().clone()  # the generator lives on the CPU; leave the caller's logits be
    logits[:, PAD] = float("-inf")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(
    model,
    prompt: list[int],
    num_samples: int = 1,
    max_new_tokens: int = 200,
    temperature: float = 0.7,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """num_samples continuations of one prompt, each cut after its <EOS> (kept).

    With use_cache the model carries its state (hidden state or key/value cache), so each new
    token costs one position; without it every step re-runs the whole sequence, which is the
    reference the cache is measured and tested against.
    """
    context = getattr(model, "context_length", None)
    if context is not None and len(prompt) > context:
        raise BarkError(
            f"the prompt has {len(prompt)} tokens but the model's context_length is {context}; shorten the prompt"
        )
    if context is not None:
        max_new_tokens = min(max_new_tokens, context - len(prompt))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    seq = torch.tensor([prompt] * num_samples, device=device)
    done = torch.zeros(num_samples, dtype=torch.bool, device=device)
    logits, state = model(seq)
    for i in range(max_new_tokens):
        token = pick(logits[:, -1], temperature, top_k, generator).to(device)
        token = torch.where(done, PAD, token)
        seq = torch.cat([seq, token[:, None]], 1)
        done |= token == EOS
        if done.all() or i == max_new_tokens - 1:
            break
        logits, state = model(token[:, None], state) if use_cache else model(seq)
    model.train(was_training)
    out = []
    for row in seq[:, len(prompt) :].tolist():
        out.append(row[: row.index(EOS) + 1] if EOS in row else row)
    return out
