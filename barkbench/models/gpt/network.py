"""BarkGPT: token embedding plus a position signal, pre-norm causal blocks, final norm, linear
head; and ReferenceGPT, the seed's construction, the baseline `make bench` measures it against.

`model.attention` picks the blocks' attention layer (barkbench/models/attention.py) and
`model.positional` how the model knows where a token is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from barkbench.models.parts import (
    INIT_STD,
    DecoderOnly,
    build_attention,
    cache_bytes,
    feed_forward,
    initialise,
    on_x,
    take,
)
from barkbench.vocab import PAD


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + feed-forward(norm(x)).
    With attention `none` only the feed-forward half is left: no position sees another."""

    def __init__(self, cfg):
        super().__init__()
        self.attn = build_attention(cfg, cfg.embedding_dim, rope=cfg.positional == "rope")
        self.norm1 = nn.LayerNorm(cfg.embedding_dim) if self.attn else None
        self.norm2 = nn.LayerNorm(cfg.embedding_dim)
        self.ffn = feed_forward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cache=None, keep=None):
        """keep, if given, picks the positions that go on past attention (teacher forcing's last
        block: the answer's)."""
        if self.attn is not None:
            a, cache = self.attn(self.norm1(x), cache)
            x = x + self.drop(a)
        if keep is not None:
            x = keep(x)
        return x + self.ffn(self.norm2(x)), cache


def sinusoids(length: int, width: int) -> torch.Tensor:
    """The fixed positional encoding of "Attention is all you need": sines and cosines of
    geometrically spaced frequencies, so every offset is a fixed rotation of the features."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : width // 2]
    return table


# The table's features have magnitude ~0.7, the token embeddings start at INIT_STD (0.02 for
# GPT-2's start): added as they are, the positions drown the tokens, and on echo the model never
# learned at all (train loss stuck at chance for 1500 steps). Scaled to the embeddings' size,
# both are heard.
SINUSOID_SCALE = 2**0.5


class Positions:
    """Token embedding plus the position signal `model.positional` names, for an nn.Module that
    mixes it in (BarkGPT; the transformer, for its source and its target alike)."""

    def embedding(self, cfg, vocab_size: int) -> None:
        self.context_length = cfg.context_length
        self.positional = cfg.positional
        self.sinusoid_scale = SINUSOID_SCALE * INIT_STD[cfg.init]
        self.tok = nn.Embedding(vocab_size, cfg.embedding_dim)
        if cfg.positional == "learned":
            self.pos = nn.Embedding(cfg.context_length, cfg.embedding_dim)
        elif cfg.positional == "sinusoidal":
            self.register_buffer("pos_table", sinusoids(cfg.context_length, cfg.embedding_dim), persistent=False)
        # rope rotates queries and keys inside attention; none adds nothing at all

    def embed(self, tokens: torch.Tensor, past: int = 0) -> torch.Tensor:
        """Tokens [B, T] at positions past, past + 1, ... as vectors [B, T, embedding_dim]."""
        T = tokens.shape[1]
        if past + T > self.context_length:
            raise ValueError(f"sequence of {past + T} tokens is longer than context_length {self.context_length}")
        x = self.tok(tokens)
        if self.positional == "learned":
            x = x + self.pos(torch.arange(past, past + T, device=tokens.device))
        elif self.positional == "sinusoidal":
            x = x + self.sinusoid_scale * self.pos_table[past : past + T]
        return x


class BarkGPT(Positions, DecoderOnly, nn.Module):
    """Its state is (position of the next token, one key/value cache per block)."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.embedding(cfg, vocab_size)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, vocab_size)
        initialise(self, cfg.init)

    def forward(self, tokens, state=None, keep=None):
        """keep, if given, picks the positions the last block's feed-forward and the head work out
        (Block.forward); every position still feeds attention and the caches."""
        past, caches = state or (0, [None] * len(self.blocks))
        x = self.drop(self.embed(tokens, past))
        keeps = [None] * (len(self.blocks) - 1) + [keep]
        new_caches = []
        for block, cache, picks in zip(self.blocks, caches, keeps):
            x, cache = block(x, cache, picks)
            new_caches.append(cache)
        return self.head(self.norm(x)), (past + tokens.shape[1], new_caches)

    def teacher_forcing(self, x, answer_start):
        """forward's logits at the positions that predict an answer token, from answer_start - 1
        on, and zeros before them (as an encoder–decoder's). The last block's feed-forward and the
        head run on those alone: on echo, a fifth less work per training step, for forward's values
        there (to rounding: the products have fewer rows)."""
        first = answer_start - 1
        width = int(((x != PAD).sum(1) - first).max())
        logits, _ = self(x, keep=lambda h: take(h, first, width, 0.0))
        return on_x(logits, answer_start, x.shape[1], source=False, fill=0.0)

    def state_bytes(self, length: int | None = None) -> int:
        """Bytes of key/value cache per sequence at `length` positions, context_length by default
        (none without attention)."""
        return cache_bytes(
            len(self.attention_layers()),
            length or self.context_length,
            self.tok.embedding_dim,
            self.head.weight.element_size(),
        )

    def attention_layers(self) -> list:
        return [block.attn for block in self.blocks if block.attn is not None]

    def gradient_states(self, x, answer_start):
        """The residual stream entering every block, at every position."""
        states: list[torch.Tensor] = []

        def keep(_module, args):
            args[0].retain_grad()
            states.append(args[0])

        hooks = [block.register_forward_pre_hook(keep) for block in self.blocks]
        logits = self.teacher_forcing(x, answer_start)
        for hook in hooks:
            hook.remove()
        return logits, lambda: {f"entering layer {i + 1}": s.grad[0].norm(dim=-1) for i, s in enumerate(states)}


class ReferenceGPT(DecoderOnly, nn.Module):
    """The seed's BarkGPT layers, made correct (batch_first and a causal mask) but otherwise as
    it built them: nn.TransformerEncoderLayer blocks (post-norm, ReLU)."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, cfg.embedding_dim)
        self.pos = nn.Embedding(cfg.context_length, cfg.embedding_dim)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(cfg.embedding_dim, cfg.heads, cfg.ffn_dim, dropout=cfg.dropout, batch_first=True)
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, vocab_size)

    def forward(self, tokens, state=None):
        T = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(T, device=tokens.device))
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        return self.head(self.norm(x)), None
