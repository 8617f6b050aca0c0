"""Torch pieces that several families share: building the configured attention layer, the
key/value cache's size, GPT-2's weight init, a transformer's feed-forward layer, what every
decoder-only model does the same way (the prompt and the answer are one sequence) and what
every encoder–decoder model does the same way (the prompt is the source, the answer the target)."""

from __future__ import annotations

import torch
from torch import nn

from barkbench.models.attention import ATTENTION
from barkbench.models.protocol import Defaults
from barkbench.vocab import PAD


def build_attention(cfg, width: int, rope: bool = False):
    """The config's attention layer over vectors of this width, or None for `none`."""
    if cfg.attention == "none":
        return None
    return ATTENTION[cfg.attention](width, cfg.heads, cfg.dropout, rope)


def cache_bytes(layers: int, length: int, width: int, element_size: int) -> int:
    """A key and a value vector per position in every attention layer."""
    return layers * 2 * length * width * element_size


def init_weights(module):
    """GPT-2's start: every weight N(0, 0.02), biases zero."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


# How a transformer's weights start (model.init), and the std its token embeddings start with.
# gpt2: every weight N(0, 0.02), as GPT-2 and nanoGPT; at width 64 it trained echo faster than
# PyTorch's defaults (validation accuracy 0.87 against 0.68 after 1000 steps of echo_gpt).
# torch: PyTorch's defaults (linear layers uniform in +-1/sqrt(fan_in), embeddings N(0, 1)); at
# width 64 a 2-layer GPT crossed the induction-head transition of mqar (32 keys, 8 pairs) by
# step 750, where gpt2's start stayed at 0.20 for 3000 steps at every learning rate tried.
INIT_STD = {"gpt2": 0.02, "torch": 1.0}


def initialise(model: nn.Module, init: str) -> None:
    if init == "gpt2":
        model.apply(init_weights)


def feed_forward(cfg) -> nn.Sequential:
    """A transformer block's position-wise feed-forward layer (its own dropout at the end)."""
    return nn.Sequential(
        nn.Linear(cfg.embedding_dim, cfg.ffn_dim),
        nn.GELU(),
        nn.Linear(cfg.ffn_dim, cfg.embedding_dim),
        nn.Dropout(cfg.dropout),
    )


class DecoderOnly(Defaults):
    """The model protocol (barkbench/models/protocol.py) for a decoder-only model, from its
    `forward(tokens, state)`: it reads the prompt and the answer as one sequence, so teacher
    forcing is one pass over it and generation carries the state of that pass forward."""

    def teacher_forcing(self, x: torch.Tensor, answer_start: torch.Tensor) -> torch.Tensor:
        return self(x)[0]

    def prefill(self, prompt: torch.Tensor):
        logits, state = self(prompt)
        return logits[:, -1], state

    def decode(self, token: torch.Tensor, state):
        logits, state = self(token[:, None], state)
        return logits[:, -1], state


def take(x: torch.Tensor, start: torch.Tensor, width: int, fill, end=None, dim: int = 1) -> torch.Tensor:
    """Each row's positions from its own start on, as a batch: out[b, i] = x[b, start[b] + i] along
    `dim`, for i < width; `fill` where that position is before 0 or at or after end[b] (default:
    the end of x). One gather, however the rows differ."""
    x = x.movedim(dim, 1)
    B, T = x.shape[:2]
    at = start[:, None] + torch.arange(width, device=x.device)
    outside = (at < 0) | (at >= (T if end is None else end[:, None]))
    shape = (B, width) + (1,) * (x.dim() - 2)
    out = x.gather(1, at.clamp(0, T - 1).view(shape).expand(B, width, *x.shape[2:]))
    return out.masked_fill(outside.view(shape), fill).movedim(1, dim)


def real_tokens(lengths, width: int):
    """[B, width], True at each row's first lengths[b] positions: its real tokens, before the pads
    (None for lengths None: a batch without pads)."""
    return None if lengths is None else torch.arange(width, device=lengths.device) < lengths[:, None]


def on_x(values: torch.Tensor, answer_start: torch.Tensor, width: int, source: bool, fill, dim: int = 1):
    """Values over each row's source positions (source=True) or target positions, put at the
    positions of x they stand for: source position i at i (up to the row's own source length),
    target position j at answer_start - 1 + j; `fill` everywhere else."""
    if source:
        return take(values, torch.zeros_like(answer_start), width, fill, end=answer_start, dim=dim)
    return take(values, 1 - answer_start, width, fill, dim=dim)


class EncoderDecoder(Defaults):
    """The model protocol (barkbench/models/protocol.py) for an encoder–decoder model, from its

        encode(source [B, S], lengths) -> state   the decoder's starting state: everything it
                                                  needs of the source (lengths None: no pads)
        model(target [B, T], state) -> (logits, state)   the decoder, causal over the target

    The prompt is the source, the answer the target. The target starts with the prompt's last
    token, `Assistant:`, as its start symbol: decoder position j reads x[answer_start - 1 + j]
    and predicts the token after it, so the logits line up with a decoder-only model's.
    """

    def teacher_forcing(self, x: torch.Tensor, answer_start: torch.Tensor) -> torch.Tensor:
        """Row b's source is x[b, :answer_start[b]], its target x[b, answer_start[b] - 1:]: both
        cut out of the batch by one gather each (take), left-aligned and padded on the right. The
        outputs before answer_start - 1 predict no answer token: they are zeros."""
        T, first = x.shape[1], answer_start - 1
        longest = int(answer_start.max())
        source = take(x, torch.zeros_like(answer_start), longest, PAD, end=answer_start)
        lengths = None if bool((answer_start == longest).all()) else answer_start  # no pads: no packing, no mask
        target = take(x, first, T - int(first.min()), PAD)
        logits, _ = self(target, self.encode(source, lengths))
        return on_x(logits, answer_start, T, source=False, fill=0.0)

    def prefill(self, prompt: torch.Tensor):
        logits, state = self(prompt[:, -1:], self.encode(prompt, None))
        return logits[:, -1], state

    def decode(self, token: torch.Tensor, state):
        logits, state = self(token[:, None], state)
        return logits[:, -1], state
