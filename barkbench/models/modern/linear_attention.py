"""linear_attention (Katharopoulos et al. 2020, "Transformers are RNNs"): softmax(q . k) replaced
by phi(q) . phi(k) with the feature map phi = elu + 1, so attention over the past is a running
sum. Per head, with state S [dk, dv] and normaliser z [dk]:

    S_t = S_{t-1} + phi(k_t) v_t^T      z_t = z_{t-1} + phi(k_t)
    y_t = S_t^T phi(q_t) / (z_t . phi(q_t) + eps)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from barkbench.models.modern.mixer import (
    Mixer,
    chunks,
    convolve,
    merge_heads,
    numel,
    run,
    short_conv,
    split_heads,
    unchunk,
    zeros_like_state,
)

CHUNK = 64  # positions per chunk: the state is summed once per chunk, the rest is matrix products
EPS = 1e-6  # the normaliser is a sum of positive terms; eps only guards an all-zero one


def feature(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1: positive, so every normaliser is."""
    return F.elu(x) + 1


def chunked(state, q, k, v):
    """q, k [B, H, T, dk] (features), v [B, H, T, dv]; state (S, z) or None. Within a chunk the
    outputs are causal linear attention, tril(q k^T) v; across chunks the state before each chunk
    is a cumulative sum of the chunks' k^T v, so there is no loop at all."""
    B, H, T, dk = q.shape
    S0, z0 = zeros_like_state(state, q, (B, H, dk, v.shape[-1]), (B, H, dk))
    size = min(CHUNK, T)
    q, k, v = (chunks(x, size) for x in (q, k, v))  # [B, H, n, c, d]
    S = S0[:, :, None] + (k.transpose(-1, -2) @ v).cumsum(2)  # the state after each chunk
    z = z0[:, :, None] + k.sum(3).cumsum(2)
    S_before = torch.cat([S0[:, :, None], S[:, :, :-1]], 2)
    z_before = torch.cat([z0[:, :, None], z[:, :, :-1]], 2)
    scores = (q @ k.transpose(-1, -2)).tril()  # position t sees itself and the chunk before it
    numerator = q @ S_before + scores @ v
    denominator = (q * z_before[:, :, :, None]).sum(-1) + scores.sum(-1)
    y = numerator / (denominator[..., None] + EPS)
    return unchunk(y, T), (S[:, :, -1], z[:, :, -1])


def step(state, q, k, v):
    """One position: q, k [B, H, dk], v [B, H, dv]."""
    B, H, dk = q.shape
    S, z = zeros_like_state(state, q, (B, H, dk, v.shape[-1]), (B, H, dk))
    S = S + k[..., :, None] * v[..., None, :]
    z = z + k
    y = (q[..., None, :] @ S).squeeze(-2) / ((q * z).sum(-1, keepdim=True) + EPS)
    return y, (S, z)


class LinearAttention(Mixer):
    """q, k and v from one projection, the short convolution, the feature map, the recurrence per
    head, an output projection. The normaliser keeps each output a weighted mean of values."""

    def __init__(self, cfg):
        super().__init__()
        E, self.heads = cfg.embedding_dim, cfg.heads
        self.qkv = nn.Linear(E, 3 * E, bias=False)
        self.conv = short_conv(3 * E, cfg.short_conv)
        self.out = nn.Linear(E, E, bias=False)

    def mix(self, x, state):
        conv_state, memory = state or (None, None)
        qkv, conv_state = convolve(self.conv, self.qkv(x), conv_state)
        q, k, v = (split_heads(t, self.heads) for t in qkv.chunk(3, -1))
        y, memory = run(chunked, step, (feature(q), feature(k), v), memory, dim=2)
        return self.out(merge_heads(y)), (conv_state, memory)

    def state_numel(self) -> int:
        E = self.out.in_features
        dk = E // self.heads
        return self.heads * (dk * dk + dk) + numel(self.conv)
