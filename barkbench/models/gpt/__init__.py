"""gpt: BarkGPT, a causal transformer (barkbench/models/gpt/network.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from barkbench.models.family import Family, ModelSection, attention_checks, fits_context

Positional = Literal["learned", "sinusoidal", "rope", "none"]  # how a transformer knows where a token is
Init = Literal["gpt2", "torch"]  # how a transformer's weights start (barkbench/models/parts.py says why two)
INIT = Field("gpt2", description="gpt2: every weight N(0, 0.02), as GPT-2; torch: PyTorch's own defaults")


class GPTConfig(ModelSection):
    name: str = "gpt"
    attention: Literal["mha", "wrapper", "single", "simple", "none"] = Field(
        "mha", description="the attention lab: mha, wrapper, single, simple or none"
    )
    positional: Positional = Field("learned", description="how it knows where a token is")
    init: Init = INIT


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
