"""Attention, built up one step at a time as the articles do; each step is a layer to swap in.

    simple   self-attention with no trainable weights: the scores are dot products of the inputs
    single   one head with trainable query, key and value projections
    wrapper  several single heads run one after another and concatenated
    mha      the batched multi-head layer: all heads split from one projection, on PyTorch's
             fused kernel (with the from-scratch computation beside it as the reference)

Every variant is causal, applies dropout to its attention weights, and has the signature

    y, cache = layer(x, cache=None)

so a model carries a key/value cache through generation whatever the variant. `single`,
`wrapper` and `mha` end with an output projection, so they are drop-in replacements with
the same shapes (the articles' wrapper only concatenates; the projection is what makes it
comparable, head for head, with `mha`).

Set `layer.keep_weights = True` to have the layer store its last attention weights in
`layer.weights` ([batch, heads, query, key]); `barkbench inspect` draws them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(queries: int, keys: int, device=None) -> torch.Tensor:
    """True where a query may look. Queries are the last `queries` positions of the keys."""
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)


def attend(q, k, v, dropout: float, fused: bool):
    """Causal scaled dot-product attention over [batch, heads, time, head_size] tensors.

    Returns the weighted sum of the values and, on the from-scratch path, the weights.
    """
    tq, tk = q.shape[-2], k.shape[-2]
    if fused:
        if tq == tk:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True), None
        # After a cache the queries sit at the end; is_causal would align them to the start.
        mask = None if tq == 1 else causal_mask(tq, tk, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout), None
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~causal_mask(tq, tk, q.device), float("-inf"))
    weights = F.dropout(torch.softmax(scores, dim=-1), dropout)  # kept as they mixed the values
    return weights @ v, weights


def rotate(x: torch.Tensor, start: int) -> torch.Tensor:
    """Rotary position embedding (RoPE) of [batch, heads, time, size] at positions start, start+1, ...

    Pairs of features are rotated by an angle proportional to the position, so the dot
    product of a rotated query and key depends only on how far apart they are.
    """
    half = x.shape[-1] // 2
    freq = 10000 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = torch.arange(start, start + x.shape[-2], device=x.device, dtype=torch.float32)[:, None] * freq
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Layer(nn.Module):
    """What every variant shares: the cache, RoPE, dropout and keeping weights for inspection."""

    def __init__(self, dropout: float, rope: bool):
        super().__init__()
        self.dropout, self.rope = dropout, rope
        self.keep_weights, self.weights = False, None

    def heads_attend(self, q, k, v, cache, fused: bool = False):
        """q, k, v: [batch, heads, new time, size] for the new positions; returns [batch, new time, heads x size]."""
        past = 0 if cache is None else cache[0].shape[-2]
        if self.rope:
            q, k = rotate(q, past), rotate(k, past)
        if cache is not None:
            k, v = torch.cat([cache[0], k], -2), torch.cat([cache[1], v], -2)
        y, weights = attend(q, k, v, self.dropout if self.training else 0.0, fused and not self.keep_weights)
        if self.keep_weights:
            self.weights = weights.detach()
        B, H, T, S = y.shape
        return y.transpose(1, 2).reshape(B, T, H * S), (k, v)


class SimpleAttention(Layer):
    """No weights at all: each position's output is a mix of the inputs, weighted by the
    softmax of their dot products with its own input (the articles' first step)."""

    def __init__(self, width: int, heads: int, dropout: float, rope: bool):
        super().__init__(dropout, rope)

    def forward(self, x, cache=None):
        heads = x[:, None]  # one head, the input itself as query, key and value
        return self.heads_attend(heads, heads, heads, cache)


class HeadStack(Layer):
    """`single` (one head) and `wrapper` (several): each head its own query, key and value
    projections, run one after another and concatenated, then an output projection."""

    def __init__(self, width: int, heads: int, dropout: float, rope: bool):
        super().__init__(dropout, rope)
        size = width // heads
        self.query = nn.ModuleList(nn.Linear(width, size) for _ in range(heads))
        self.key = nn.ModuleList(nn.Linear(width, size) for _ in range(heads))
        self.value = nn.ModuleList(nn.Linear(width, size) for _ in range(heads))
        self.proj = nn.Linear(width, width)

    def forward(self, x, cache=None):
        outputs, keys, values, weights = [], [], [], []
        for h in range(len(self.query)):
            q, k, v = (proj[h](x)[:, None] for proj in (self.query, self.key, self.value))
            past = None if cache is None else (cache[0][:, h : h + 1], cache[1][:, h : h + 1])
            y, (k, v) = self.heads_attend(q, k, v, past)
            outputs.append(y)
            keys.append(k)
            values.append(v)
            weights.append(self.weights)
        if self.keep_weights:
            self.weights = torch.cat(weights, dim=1)
        return self.proj(torch.cat(outputs, dim=-1)), (torch.cat(keys, 1), torch.cat(values, 1))


class MultiHeadAttention(Layer):
    """The batched layer: one projection makes every head's query, key and value at once."""

    def __init__(self, width: int, heads: int, dropout: float, rope: bool, fused: bool = True):
        super().__init__(dropout, rope)
        self.heads, self.fused = heads, fused
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in self.qkv(x).split(C, 2))
        y, cache = self.heads_attend(q, k, v, cache, fused=self.fused)
        return self.proj(y), cache


ATTENTION = {
    "simple": SimpleAttention,
    "single": lambda width, heads, dropout, rope: HeadStack(width, 1, dropout, rope),
    "wrapper": HeadStack,
    "mha": MultiHeadAttention,
}
