"""BarkRNN (rnn, lstm, gru) and BarkGPT, picked by name from MODELS.

Every model has the same interface, so training, evaluation and sampling never ask which
one they hold:

    logits, state = model(tokens, state=None)

tokens is [B, T]; logits is [B, T, vocab]; state is what the model carries to continue the
sequence (the hidden state of an RNN, the key/value cache of a GPT). Passing it back with
the next tokens continues where the last call stopped, so generation costs one position
per new token for both families.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from barkbench.tasks import VOCAB


class BarkRNN(nn.Module):
    """Embedding, a recurrent core (tanh RNN, LSTM or GRU), layer norm, linear head."""

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
        self.norm = nn.LayerNorm(cfg.hidden_size)
        self.head = nn.Linear(cfg.hidden_size, len(VOCAB))

    def forward(self, tokens, state=None):
        out, state = self.core(self.embed(tokens), state)
        return self.head(self.norm(out)), state

    def state_bytes(self) -> int:
        """Bytes of hidden state per sequence: one vector per layer (two for an LSTM: h and c)."""
        vectors = self.core.num_layers * (2 if isinstance(self.core, nn.LSTM) else 1)
        return vectors * self.core.hidden_size * self.head.weight.element_size()


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention on PyTorch's fused kernel; q, k and v from one projection."""

    def __init__(self, cfg):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.embedding_dim, 3 * cfg.embedding_dim)
        self.proj = nn.Linear(cfg.embedding_dim, cfg.embedding_dim)
        self.dropout = cfg.dropout

    def forward(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in self.qkv(x).split(C, 2))
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        p = self.dropout if self.training else 0.0
        if k.shape[2] == T:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:  # one new token after a cache: it may see every key, so no mask at all
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            # New queries after a cache: query i sits at position (past + i) and sees keys up
            # to there. (is_causal would align the mask to the top left, which is wrong here.)
            past = k.shape[2] - T
            mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, T, C)), (k, v)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embedding_dim)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.embedding_dim)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.embedding_dim, cfg.ffn_dim),
            nn.GELU(),
            nn.Linear(cfg.ffn_dim, cfg.embedding_dim),
            nn.Dropout(cfg.dropout),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cache=None):
        a, cache = self.attn(self.norm1(x), cache)
        x = x + self.drop(a)
        return x + self.ffn(self.norm2(x)), cache


class BarkGPT(nn.Module):
    """Token and learned position embeddings, pre-norm causal blocks, final norm, linear head."""

    def __init__(self, cfg):
        super().__init__()
        self.context_length = cfg.context_length
        self.tok = nn.Embedding(len(VOCAB), cfg.embedding_dim)
        self.pos = nn.Embedding(cfg.context_length, cfg.embedding_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, len(VOCAB))
        self.apply(_init_weights)

    def forward(self, tokens, state=None):
        past = state[0][0].shape[2] if state else 0
        T = tokens.shape[1]
        if past + T > self.context_length:
            raise ValueError(f"sequence of {past + T} tokens is longer than context_length {self.context_length}")
        x = self.drop(self.tok(tokens) + self.pos(torch.arange(past, past + T, device=tokens.device)))
        caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, state[i] if state else None)
            caches.append(cache)
        return self.head(self.norm(x)), caches

    def state_bytes(self) -> int:
        """Bytes of key/value cache per sequence at context_length: a key and a value vector
        per position in every layer."""
        width = self.tok.embedding_dim
        return len(self.blocks) * 2 * self.context_length * width * self.head.weight.element_size()


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
