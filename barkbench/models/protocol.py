"""The model protocol: what training, evaluation, sampling, `inspect` and `bench` ask of every
model, so that none of them asks which model it holds.

A model is a torch module that gives `teacher_forcing`, `prefill`, `decode` and `state_bytes`
and has a `head`; `Defaults` gives the rest unless the model says otherwise. Decoder-only models
build on barkbench/models/parts.py's DecoderOnly, encoder–decoder models on its EncoderDecoder;
both build on Defaults.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Model(Protocol):
    head: nn.Linear  # the linear layer that makes the logits
    context_length: int | None  # the longest sequence it reads; None: any length

    def teacher_forcing(self, x: torch.Tensor, answer_start: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, vocab] for the targets x[:, 1:] and on, with every answer token's own
        prefix as input (the training pass)."""

    def prefill(self, prompt: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(logits of the token after the prompt [B, vocab], the state after it)."""

    def decode(self, token: torch.Tensor, state) -> tuple[torch.Tensor, Any]:
        """Generation, one position a token [B]: (logits of the next token, the new state)."""

    def state_bytes(self, length: int | None = None) -> int:
        """Bytes of state per sequence while generating: 4 bytes (fp32) for every element that
        decoding carries from one token to the next, once it has read `length` tokens (default:
        context_length). A recurrence carries the same at any length; a key/value cache grows."""

    def room(self, prompt_length: int) -> int | None:
        """How many new tokens fit after a prompt (None: no limit; < 0: the prompt itself does not fit)."""

    def attention_layers(self) -> list:
        """The self-attention layers whose weights `inspect` draws (barkbench/models/attention.py)."""

    def alignment_layers(self) -> list:
        """The cross-attention layers (decoder over source) whose weights `inspect` draws."""

    def gradient_states(self, x: torch.Tensor, answer_start: torch.Tensor) -> tuple[torch.Tensor, Callable]:
        """(logits as teacher forcing's, read): after a backward pass, read() gives {line name:
        the gradient norm at each position of x of the model's state there}."""

    def no_decay_parameters(self) -> list[nn.Parameter]:
        """The parameters that weight decay leaves alone."""


# What a model must give itself, the methods of Model that Defaults does not give; a plugin's
# family is held to it when its config is validated (barkbench/models/family.py's held_to_protocol).
REQUIRED = ("teacher_forcing", "prefill", "decode", "state_bytes")


class Defaults:
    """The half of the protocol a model need not give: mixed into nn.Module subclasses."""

    context_length = None

    def room(self, prompt_length: int) -> int | None:
        return None if self.context_length is None else self.context_length - prompt_length

    def attention_layers(self) -> list:
        return []

    def alignment_layers(self) -> list:
        return []

    def gradient_states(self, x, answer_start):
        """The whole state carried out of every position, read through decoding."""
        return stepped_gradients(self, x, lambda state: {"state": state})

    def no_decay_parameters(self) -> list[nn.Parameter]:
        """Biases and norm gains (every parameter of fewer than 2 dimensions), as GPT-2 and most
        recipes since; and those that keep_out_of_decay marked."""
        return [p for p in self.parameters() if p.dim() < 2 or getattr(p, "_no_weight_decay", False)]


def keep_out_of_decay(*params: nn.Parameter) -> None:
    """Mark parameters that weight decay must leave alone although they are matrices (Mamba's
    A_log: decay would pull every state's decay rate towards exp(0) = 1). The flag is Mamba's own
    name for it, so code read beside its reference says the same."""
    for p in params:
        p._no_weight_decay = True


def tensors(state) -> list[torch.Tensor]:
    """Every tensor in a (nested) state."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [t for s in state for t in tensors(s)]
    return []  # None, or a position counter


def stepped_gradients(model, x: torch.Tensor, lines: Callable) -> tuple[torch.Tensor, Callable]:
    """gradient_states through the model's own recurrence: it reads x one token at a time (prefill
    of the first, then decode), so the state carried out of every position is a tensor of its own,
    and its gradient is everything the later positions, the answer among them, ask of it.
    lines(state) -> {line name: the part of the state the line measures}."""
    logits, state = model.prefill(x[:, :1])
    steps, carried = [logits], [lines(state)]
    for t in range(1, x.shape[1]):
        logits, state = model.decode(x[:, t], state)
        steps.append(logits)
        carried.append(lines(state))
    for parts in carried:
        for t in tensors(list(parts.values())):
            if t.requires_grad:
                t.retain_grad()

    def norm(part) -> float:
        return sum(float(t.grad.pow(2).sum()) for t in tensors(part) if t.grad is not None) ** 0.5

    def read():
        return {name: torch.tensor([norm(parts[name]) for parts in carried]) for name in carried[0]}

    return torch.stack(steps, 1), read
