"""gpt: BarkGPT, a causal transformer (barkbench/models/gpt/network.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from barkbench.models.family import Family, ModelSection, attention_checks, fits_context

Positional = Literal["learned", "sinusoidal", "rope", "none"]  # how a transformer knows where a token is


class GPTConfig(ModelSection):
    name: str = "gpt"
    attention: Literal["mha", "wrapper", "single", "simple", "none"] = Field(
        "mha", description="the attention lab: mha, wrapper, single, simple or none"
    )
    positional: Positional = Field("learned", description="how it knows where a token is")


def build(cfg: GPTConfig, vocab_size: int):
    from barkbench.models.gpt.network import BarkGPT

    return BarkGPT(cfg, vocab_size)


def reference(cfg: GPTConfig, vocab_size: int):
    from barkbench.models.gpt.network import ReferenceGPT

    return ReferenceGPT(cfg, vocab_size)


GPT = Family(
    config=GPTConfig,
    build=build,
    checks=(
        *attention_checks("embedding_dim", ("mha", "wrapper"), rope=lambda m: m.positional == "rope"),
        *fits_context(),
    ),
    reference=reference,
)
