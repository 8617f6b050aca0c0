"""The sliding-window GPT: token embedding, pre-norm blocks of windowed causal attention (with
rotary positions, so any length fits) and a feed-forward layer, final norm, linear head.

Its state while generating is (the next position, each layer's keys and values of the last
`window` positions): decoding a token attends over those and itself, then drops the oldest.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from barkbench.plugins import DecoderOnly


def rotate(x: torch.Tensor, start: int) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021) of [batch, heads, time, size] at positions start,
    start + 1, ...: a query's dot product with a key then depends on how far apart they are, not
    where, so the cached keys need no position of their own."""
    half = x.shape[-1] // 2
    freq = 10000 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = torch.arange(start, start + x.shape[-2], device=x.device, dtype=torch.float32)[:, None] * freq
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class WindowAttention(nn.Module):
    """Causal multi-head self-attention over the last `window` positions and the position itself."""

    def __init__(self, cfg):
        super().__init__()
        self.heads, self.window, self.dropout = cfg.heads, cfg.window, cfg.dropout
        self.qkv = nn.Linear(cfg.embedding_dim, 3 * cfg.embedding_dim)
        self.out = nn.Linear(cfg.embedding_dim, cfg.embedding_dim)
        self.keep_weights, self.weights = False, None  # `barkbench inspect` sets keep_weights and draws weights

    def forward(self, x: torch.Tensor, past: int, cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, past), rotate(k, past)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        # how far back each key lies from each query: the queries are the last T of the keys
        back = torch.arange(T, device=x.device)[:, None] + (k.shape[2] - T) - torch.arange(k.shape[2], device=x.device)
        seen = (back >= 0) & (back <= self.window)
        if self.keep_weights:
            scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~seen, float("-inf"))
            self.weights = scores.softmax(-1).detach()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=seen, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, C)), (k[:, :, -self.window :], v[:, :, -self.window :])


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.embedding_dim), nn.LayerNorm(cfg.embedding_dim)
        self.attn = WindowAttention(cfg)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.embedding_dim, cfg.ffn_dim),
            nn.GELU(),
            nn.Linear(cfg.ffn_dim, cfg.embedding_dim),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, past, cache):
        a, cache = self.attn(self.norm1(x), past, cache)
        x = x + a
        return x + self.ffn(self.norm2(x)), cache


class WindowGPT(DecoderOnly, nn.Module):
    """DecoderOnly gives teacher_forcing, prefill and decode from forward(tokens, state), and the
    protocol's defaults (room: any length; gradient_states through decoding); the model gives
    state_bytes, its head, and the attention layers `inspect` draws."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.window = cfg.window
        self.tok = nn.Embedding(vocab_size, cfg.embedding_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, vocab_size)
        for module in self.modules():  # GPT-2's start: small weights, zero biases
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, state=None):
        past, caches = state or (0, [None] * len(self.blocks))
        x = self.drop(self.tok(tokens))
        kept = []
        for block, cache in zip(self.blocks, caches):
            x, cache = block(x, past, cache)
            kept.append(cache)
        return self.head(self.norm(x)), (past + tokens.shape[1], kept)

    def state_bytes(self, length: int | None = None) -> int:
        """A key and a value per layer for each of the last `window` positions (fewer while the
        sequence is shorter): the same at any length beyond the window."""
        positions = self.window if length is None else min(self.window, length)
        return len(self.blocks) * 2 * positions * self.tok.embedding_dim * self.head.weight.element_size()

    def attention_layers(self) -> list:
        return [block.attn for block in self.blocks]
