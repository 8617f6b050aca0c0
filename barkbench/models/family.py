"""What every model family module builds on: the Family record (what the rest of barkbench asks
of a family), the keys every model section has, and the checks attention shares.

Nothing here imports torch, so a config is read and validated without it; a family's network
lives in its package's network.py, imported when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from pydantic import Field, model_validator

from barkbench.schema import Check, Section


class ModelSection(Section):
    """The keys every model section accepts. A family ignores those it does not use (an RNN's
    `ffn_dim`), so one config can switch `model.name` with an override."""

    name: str
    embedding_dim: int = Field(64, ge=1, description="token embedding size; for a transformer, the model width")
    hidden_size: int = Field(64, ge=1, description="the recurrent state size")
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1, description="attention heads")
    ffn_dim: Optional[int] = Field(
        None, ge=1, description="a transformer's feed-forward width; default 4 x embedding_dim"
    )
    context_length: int = Field(
        512, ge=1, description="the longest sequence a transformer accepts; the length attention caches are reported at"
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="on activations and attention weights")

    @model_validator(mode="after")
    def _default_ffn(self):
        self.ffn_dim = self.ffn_dim or 4 * self.embedding_dim
        return self


@dataclass(frozen=True)
class Family:
    """Everything the rest of barkbench asks of a model family. Each family package makes one
    per `model.name` it answers to. The model it builds keeps barkbench/models/protocol.py's Model.
    """

    config: type[ModelSection]  # its `model:` section: keys, defaults, limits
    build: Callable  # (model config, vocabulary size) -> the model
    checks: tuple[Check, ...] = ()  # checks that relate its keys to each other and to the task
    capacity_keys: tuple[str, ...] = ()  # its keys that set how much it can remember (memory_map.png)
    # (model config, vocabulary size) -> the same computation written the textbook way, the
    # baseline `make bench` measures the model against; None where there is none.
    reference: Callable | None = None
    # (model config, vocabulary size) -> the same model, trained through its recurrence one token
    # at a time as decoding runs it: what `make bench` measures a parallel training form against.
    recurrence: Callable | None = None


def held_to_protocol(family: Family) -> Family:
    """A plugin's family (barkbench/registry.py), with the check that the model it builds for a
    config gives every method the model protocol requires. The check builds the model, so it
    imports torch; a built-in family is held to the protocol by the contract tests instead, and
    a config of one is validated without torch."""

    def check(c):
        import torch

        from barkbench.models.protocol import REQUIRED

        try:
            with torch.random.fork_rng(devices=[]):  # the weights' draws leave the seeded streams alone
                model = family.build(c.model, len(c.vocab))
        except Exception as error:  # noqa: BLE001 - a plugin's failure, said as one sentence
            return f"model.name {c.model.name}: building its model raised {type(error).__name__}: {' '.join(str(error).split())}"
        if missing := [name for name in REQUIRED if not callable(getattr(model, name, None))]:
            fix = f"define {'it' if len(missing) == 1 else 'them'} on {type(model).__name__}"
            if set(missing) - {"state_bytes"}:
                fix += " (barkbench.plugins.DecoderOnly gives teacher_forcing, prefill and decode from forward(tokens, state))"
            return (
                f"model.name {c.model.name}: its model lacks {', '.join(missing)}, which the model protocol "
                f"requires (barkbench.plugins.Model); {fix}"
            )
        return None

    return replace(family, checks=(*family.checks, (("model", "task"), check)))


def attention_checks(width_key: str, multi_head: tuple[str, ...] | None, rope: Callable = lambda m: False) -> tuple:
    """The checks of a family whose attention works on vectors of `model.<width_key>`: heads
    divide the width (for the `model.attention` variants in `multi_head`; None for a family
    whose attention is always multi-head and has no such key), and RoPE gets an even head size."""

    def heads_used(m) -> int:
        return m.heads if multi_head is None or m.attention in multi_head else 1

    def attends(m) -> bool:
        return multi_head is None or m.attention != "none"

    def heads_divide_width(c):
        m = c.model
        width = getattr(m, width_key)
        if attends(m) and width % heads_used(m):
            nearest = min((h for h in range(1, width + 1) if width % h == 0), key=lambda h: abs(h - m.heads))
            variant = "" if multi_head is None else f" for model.attention {m.attention}"
            return (
                f"model.heads ({m.heads}) does not divide model.{width_key} ({width}){variant}; "
                f"use a heads value that divides it, such as {nearest}"
            )

    def rope_pairs(c):
        m = c.model
        width = getattr(m, width_key)
        if rope(m) and attends(m) and width % heads_used(m) == 0 and (width // heads_used(m)) % 2:
            return (
                f"model.positional rope rotates pairs of features, but each head has {width // heads_used(m)} "
                f"(model.{width_key} {width} / {heads_used(m)} heads), an odd number; pick sizes that make it even"
            )

    keys = ("model.name", "model.heads", f"model.{width_key}", "model.attention")
    return ((keys, heads_divide_width), ((*keys, "model.positional"), rope_pairs))


def fits_context(what: str = "task sequences") -> tuple:
    """The checks of a family with a context length: the task's sequences and sample.prompt fit it."""

    def sequences(c):
        longest = c.longest_sequence()
        if longest > c.model.context_length:
            return (
                f"{what} reach {longest} tokens but model.context_length is {c.model.context_length}; "
                f"raise model.context_length to at least {longest} or shorten the task"
            )

    def prompt(c):
        length = len(c.sample.prompt.split()) if c.sample.prompt else 0
        if length > c.model.context_length:
            return f"sample.prompt has {length} tokens but model.context_length is {c.model.context_length}; shorten the prompt"

    return (
        (("model.name", "model.context_length", "task", "eval"), sequences),
        (("model.name", "model.context_length", "sample.prompt"), prompt),
    )
