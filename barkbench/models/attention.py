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

An encoder–decoder model needs attention that is not causal: `mha` with causal=False (an
encoder's self-attention over the whole source), and the layers by which a decoder reads the
source (ALIGNMENT: Bahdanau's additive and Luong's dot score for seq2seq, CrossAttention for
the transformer). These never attend to a source's pads (`key_mask`, [batch, keys], True at
real tokens) and have the signature

    memory = layer.memory(source_states, key_mask)   # once per source: what every step reads
    y = layer(x, memory)

Set `layer.keep_weights = True` to have the layer store its last attention weights in
`layer.weights` ([batch, heads, query, key]); `barkbench inspect` draws them.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(queries: int, keys: int, device=None) -> torch.Tensor:
    """True where a query may look. Queries are the last `queries` positions of the keys."""
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)


def attend(q, k, v, dropout: float, fused: bool, causal: bool = True, key_mask=None, scale=None):
    """Scaled dot-product attention over [batch, heads, time, head_size] tensors: causal (the
    queries are the last positions of the keys), or over every key that key_mask [batch, keys]
    allows (None: every key). The scores are scaled by `scale`, 1 / sqrt(head_size) by default.

    Returns the weighted sum of the values and, on the from-scratch path, the weights.
    """
    tq, tk = q.shape[-2], k.shape[-2]
    if causal:
        if fused and tq == tk:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scale), None
        # After a cache the queries sit at the end; is_causal would align them to the start.
        mask = None if tq == 1 else causal_mask(tq, tk, q.device)
    else:
        mask = None if key_mask is None else key_mask[:, None, None, :]
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale), None
    scores = q @ k.transpose(-2, -1) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    return mix(scores, v, mask, dropout)


def mix(scores, v, mask, dropout: float):
    """The values mixed by the softmax of the scores (never where mask is False), and the weights."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = F.dropout(torch.softmax(scores, dim=-1), dropout)  # kept as they mixed the values
    return weights @ v, weights


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[batch, time, width] -> [batch, heads, time, width / heads]."""
    B, T, C = x.shape
    return x.view(B, T, heads, C // heads).transpose(1, 2)


def rotate(x: torch.Tensor, start: int) -> torch.Tensor:
    """Rotary position embedding (RoPE) of [batch, heads, time, size] at positions start, start+1, ...

    Pairs of features (i, i + size/2) are rotated by an angle proportional to the position, so
    the dot product of a rotated query and key depends only on how far apart they are:
    (a, b) -> (a cos - b sin, a sin + b cos), computed as x cos + swap(x) (-sin, sin), which
    gives the same floats in two products instead of four.
    """
    T, size = x.shape[-2], x.shape[-1]
    half = size // 2
    cos, sin = rotations(1 << (start + T - 1).bit_length(), size, x.device, x.dtype)
    swapped = torch.cat([x[..., half:], x[..., :half]], dim=-1)
    return x * cos[start : start + T] + swapped * sin[start : start + T]


@functools.lru_cache(maxsize=32)
def rotations(length: int, size: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE's cosines and signed sines [length, size] for positions 0..length-1, made once per
    length (a power of two, so that generation one token at a time reuses them) and kept."""
    half = size // 2
    with torch.inference_mode(False):  # kept tables made in inference mode would refuse autograd later
        freq = 10000 ** (-torch.arange(half, device=device, dtype=torch.float32) / half)
        angle = torch.arange(length, device=device, dtype=torch.float32)[:, None] * freq
        cos, sin = angle.cos().to(dtype), angle.sin().to(dtype)
        return torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)


class Layer(nn.Module):
    """What every variant shares: the cache, RoPE, dropout and keeping weights for inspection."""

    causal = True  # False: over every key the key mask allows (an encoder; a decoder reading the source)
    scale = None  # of the scores; None: 1 / sqrt(head size)

    def __init__(self, dropout: float, rope: bool):
        super().__init__()
        self.dropout, self.rope = dropout, rope
        self.keep_weights, self.weights = False, None

    def weight_dropout(self) -> float:
        return self.dropout if self.training else 0.0

    def heads_attend(self, q, k, v, cache, fused: bool = False, key_mask=None):
        """q, k, v: [batch, heads, new time, size] for the new positions; returns [batch, new time, heads x size]."""
        past = 0 if cache is None else cache[0].shape[-2]
        if self.rope:
            q, k = rotate(q, past), rotate(k, past)
        if cache is not None:
            k, v = torch.cat([cache[0], k], -2), torch.cat([cache[1], v], -2)
        fused = fused and not self.keep_weights
        y, weights = attend(q, k, v, self.weight_dropout(), fused, self.causal, key_mask, self.scale)
        return self.merged(y, weights), (k, v)

    def merged(self, y, weights):
        """The heads' outputs [batch, heads, time, size] side by side, [batch, time, heads x size];
        and the weights that made them kept, if asked."""
        if self.keep_weights:
            self.weights = weights.detach()
        B, H, T, S = y.shape
        return y.transpose(1, 2).reshape(B, T, H * S)


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
    """The batched layer: one projection makes every head's query, key and value at once.
    With causal=False it is an encoder's: every position sees every key that key_mask allows."""

    def __init__(self, width: int, heads: int, dropout: float, rope: bool, fused: bool = True, causal: bool = True):
        super().__init__(dropout, rope)
        self.heads, self.fused, self.causal = heads, fused, causal
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x, cache=None, key_mask=None):
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).split(x.shape[-1], 2))
        y, cache = self.heads_attend(q, k, v, cache, self.fused, key_mask)
        return self.proj(y), cache


class CrossAttention(Layer):
    """A transformer decoder's multi-head attention over the source: queries from the decoder's
    positions, keys and values from the encoder's output, projected once per source (memory)."""

    causal = False

    def __init__(self, width: int, heads: int, dropout: float, fused: bool = True):
        super().__init__(dropout, rope=False)  # target and source positions do not share an axis
        self.heads, self.fused = heads, fused
        self.query = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)

    def memory(self, source, key_mask):
        k, v = (split_heads(t, self.heads) for t in self.kv(source).chunk(2, dim=-1))
        return k, v, key_mask

    def forward(self, x, memory):
        k, v, key_mask = memory
        y, _ = self.heads_attend(split_heads(self.query(x), self.heads), k, v, None, self.fused, key_mask)
        return self.proj(y)


class DotAlignment(Layer):
    """Luong's dot score s . h: the decoder's output against each encoder state, unscaled as in
    the paper. One head, no weights of its own; it keeps the encoder states (one vector each)."""

    causal, scale = False, 1.0
    memory_vectors = 1  # kept per source position while generating

    def __init__(self, width: int, dropout: float):
        super().__init__(dropout, rope=False)

    def memory(self, states, key_mask):
        return states[:, None], key_mask  # one head

    def forward(self, s, memory):
        states, key_mask = memory
        return self.heads_attend(s[:, None], states, states, None, True, key_mask)[0]


class AdditiveAlignment(Layer):
    """Bahdanau's additive score v . tanh(W s + U h + b), with s the decoder's output and h an
    encoder state: a one-hidden-layer network instead of a dot product, so it cannot take the
    fused kernel. U h + b is computed once per source and kept beside h (two vectors each)."""

    causal = False
    memory_vectors = 2

    def __init__(self, width: int, dropout: float):
        super().__init__(dropout, rope=False)
        self.query = nn.Linear(width, width, bias=False)  # W
        self.key = nn.Linear(width, width)  # U and b
        self.score = nn.Linear(width, 1, bias=False)  # v

    def memory(self, states, key_mask):
        return self.key(states), states, key_mask

    def forward(self, s, memory):
        keys, states, key_mask = memory
        scores = self.score(torch.tanh(self.query(s)[:, :, None] + keys[:, None])).squeeze(-1)  # [B, T, S]
        mask = None if key_mask is None else key_mask[:, None, :]
        y, weights = mix(scores, states, mask, self.weight_dropout())
        return self.merged(y[:, None], weights[:, None])  # one head


ATTENTION = {
    "simple": SimpleAttention,
    "single": lambda width, heads, dropout, rope: HeadStack(width, 1, dropout, rope),
    "wrapper": HeadStack,
    "mha": MultiHeadAttention,
}
ALIGNMENT = {"additive": AdditiveAlignment, "dot": DotAlignment}
