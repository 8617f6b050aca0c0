"""BarkRNN (rnn, lstm, gru) and BarkGPT, picked by name from MODELS.

Every model has the same interface, so training, evaluation and sampling never ask which
one they hold:

    logits, state = model(tokens, state=None)

tokens is [B, T]; logits is [B, T, vocab]; state is what the model carries to continue the
sequence (the hidden state of an RNN, the key/value caches of its attention layers). Passing
it back with the next tokens continues where the last call stopped, so generation costs one
position per new token for both families.

`model.attention` picks the attention layer (barkbench/attention.py): a GPT's blocks use it,
and an RNN given one attends over its own recurrent states before the head, the bridge
between the two families. `model.positional` says how a GPT knows where a token is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from barkbench.attention import ATTENTION
from barkbench.tasks import VOCAB


def build_attention(cfg, width: int, rope: bool = False):
    """The config's attention layer over vectors of this width, or None for `none`."""
    if cfg.attention == "none":
        return None
    return ATTENTION[cfg.attention](width, cfg.heads, cfg.dropout, rope)


def cache_bytes(layers: int, length: int, width: int, element_size: int) -> int:
    """A key and a value vector per position in every attention layer."""
    return layers * 2 * length * width * element_size


class BarkRNN(nn.Module):
    """Embedding, a recurrent core (tanh RNN, LSTM or GRU), optionally causal attention over
    the recurrent states, layer norm, linear head."""

    def __init__(self, cfg, core: type[nn.RNNBase]):
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), cfg.embedding_dim)
        self.core = core(
            cfg.embedding_dim,
            cfg.hidden_size,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,  # torch only drops between layers
        )
        self.attn = build_attention(cfg, cfg.hidden_size)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size) if self.attn else None
        self.norm = nn.LayerNorm(cfg.hidden_size)
        self.head = nn.Linear(cfg.hidden_size, len(VOCAB))
        self.cache_length = cfg.context_length  # the length its attention's cache is reported at

    def forward(self, tokens, state=None):
        hidden, cache = state or (None, None)
        out, hidden = self.core(self.embed(tokens), hidden)
        if self.attn is not None:
            a, cache = self.attn(self.attn_norm(out), cache)
            out = out + a
        return self.head(self.norm(out)), (hidden, cache)

    def state_bytes(self) -> int:
        """Bytes of state per sequence: one hidden vector per layer (two for an LSTM: h and c),
        plus, with attention, its key/value cache at context_length."""
        size = self.head.weight.element_size()
        vectors = self.core.num_layers * (2 if isinstance(self.core, nn.LSTM) else 1)
        attention = cache_bytes(1, self.cache_length, self.core.hidden_size, size) if self.attn else 0
        return vectors * self.core.hidden_size * size + attention


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + feed-forward(norm(x)).
    With attention `none` only the feed-forward half is left: no position sees another."""

    def __init__(self, cfg):
        super().__init__()
        self.attn = build_attention(cfg, cfg.embedding_dim, rope=cfg.positional == "rope")
        self.norm1 = nn.LayerNorm(cfg.embedding_dim) if self.attn else None
        self.norm2 = nn.LayerNorm(cfg.embedding_dim)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.embedding_dim, cfg.ffn_dim),
            nn.GELU(),
            nn.Linear(cfg.ffn_dim, cfg.embedding_dim),
            nn.Dropout(cfg.dropout),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cache=None):
        if self.attn is not None:
            a, cache = self.attn(self.norm1(x), cache)
            x = x + self.drop(a)
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


# The table's features have magnitude ~0.7, the token embeddings start at 0.02 (_init_weights):
# added as they are, the positions drown the tokens, and on echo the model never learned at all
# (train loss stuck at chance for 1500 steps). Scaled to the embeddings' size, both are heard.
SINUSOID_SCALE = 0.02 * 2**0.5


class BarkGPT(nn.Module):
    """Token embedding plus a position signal, pre-norm causal blocks, final norm, linear head.

    Its state is (position of the next token, one key/value cache per block).
    """

    def __init__(self, cfg):
        super().__init__()
        self.context_length = cfg.context_length
        self.positional = cfg.positional
        self.tok = nn.Embedding(len(VOCAB), cfg.embedding_dim)
        if cfg.positional == "learned":
            self.pos = nn.Embedding(cfg.context_length, cfg.embedding_dim)
        elif cfg.positional == "sinusoidal":
            self.register_buffer("pos_table", sinusoids(cfg.context_length, cfg.embedding_dim), persistent=False)
        # rope rotates queries and keys inside attention; none adds nothing at all
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, len(VOCAB))
        self.apply(_init_weights)

    def forward(self, tokens, state=None):
        past, caches = state or (0, [None] * len(self.blocks))
        T = tokens.shape[1]
        if past + T > self.context_length:
            raise ValueError(f"sequence of {past + T} tokens is longer than context_length {self.context_length}")
        x = self.tok(tokens)
        if self.positional == "learned":
            x = x + self.pos(torch.arange(past, past + T, device=tokens.device))
        elif self.positional == "sinusoidal":
            x = x + SINUSOID_SCALE * self.pos_table[past : past + T]
        x = self.drop(x)
        new_caches = []
        for block, cache in zip(self.blocks, caches):
            x, cache = block(x, cache)
            new_caches.append(cache)
        return self.head(self.norm(x)), (past + T, new_caches)

    def state_bytes(self) -> int:
        """Bytes of key/value cache per sequence at context_length (none without attention)."""
        layers = sum(block.attn is not None for block in self.blocks)
        return cache_bytes(layers, self.context_length, self.tok.embedding_dim, self.head.weight.element_size())


def _init_weights(module):
    # Small normal weights, as in GPT-2: PyTorch's default uniform init makes a deep residual
    # stream start with large activations and trains noticeably slower on this data.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


MODELS = {
    "rnn": lambda cfg: BarkRNN(cfg, nn.RNN),
    "lstm": lambda cfg: BarkRNN(cfg, nn.LSTM),
    "gru": lambda cfg: BarkRNN(cfg, nn.GRU),
    "gpt": BarkGPT,
}


def build_model(cfg) -> nn.Module:
    return MODELS[cfg.name](cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
