"""transformer: an encoder–decoder transformer; the encoder reads the prompt both ways, the
decoder writes the answer causally, reading the encoder's output through cross-attention
(barkbench/models/transformer/network.py)."""

from __future__ import annotations

from pydantic import Field

from barkbench.models.family import Family, ModelSection, attention_checks, fits_context
from barkbench.models.gpt import INIT, Init, Positional


class TransformerConfig(ModelSection):
    name: str = "transformer"
    positional: Positional = Field(
        "learned", description="how it knows where a token is, in the source and in the target"
    )
    init: Init = INIT


def build(cfg: TransformerConfig, vocab_size: int):
    from barkbench.models.transformer.network import BarkTransformer

    return BarkTransformer(cfg, vocab_size)


def reference(cfg: TransformerConfig, vocab_size: int):
    from barkbench.models.transformer.network import ReferenceTransformer

    return ReferenceTransformer(cfg, vocab_size)


TRANSFORMER = Family(
    config=TransformerConfig,
    build=build,
    # Source and target together take the positions of one sequence (BarkTransformer.room), so
    # a task fits exactly when its sequences do, as for gpt.
    checks=(*attention_checks("embedding_dim", None, rope=lambda m: m.positional == "rope"), *fits_context()),
    reference=reference,
)
