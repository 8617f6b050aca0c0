"""Torch pieces that several families share: building the configured attention layer, the
key/value cache's size, GPT-2's weight init, and what every decoder-only model does the same
way (the prompt and the answer are one sequence)."""

from __future__ import annotations

import torch
from torch import nn

from barkbench.models.attention import ATTENTION


def build_attention(cfg, width: int, rope: bool = False):
    """The config's attention layer over vectors of this width, or None for `none`."""
    if cfg.attention == "none":
        return None
    return ATTENTION[cfg.attention](width, cfg.heads, cfg.dropout, rope)


def cache_bytes(layers: int, length: int, width: int, element_size: int) -> int:
    """A key and a value vector per position in every attention layer."""
    return layers * 2 * length * width * element_size


def init_weights(module):
    # Small normal weights, as in GPT-2: PyTorch's default uniform init makes a deep residual
    # stream start with large activations and trains noticeably slower on this data.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class DecoderOnly:
    """The model protocol for a decoder-only model, from its `forward(tokens, state)`: it reads
    the prompt and the answer as one sequence, so teacher forcing is one pass over it and
    generation carries the state of that pass forward."""

    def teacher_forcing(self, x: torch.Tensor, answer_start: torch.Tensor) -> torch.Tensor:
        return self(x)[0]

    def prefill(self, prompt: torch.Tensor):
        logits, state = self(prompt)
        return logits[:, -1], state

    def decode(self, token: torch.Tensor, state):
        logits, state = self(token[:, None], state)
        return logits[:, -1], state

    def alignment_layers(self) -> list:
        return []  # no encoder to align with
