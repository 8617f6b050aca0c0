"""seq2seq: a recurrent encoder–decoder; the decoder starts from the encoder's final state, and
with attention also reads every encoder state at every step (barkbench/models/seq2seq/network.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from barkbench.models.family import Family, ModelSection


class SeqConfig(ModelSection):
    name: str = "seq2seq"
    cell: Literal["rnn", "lstm", "gru"] = Field("gru", description="the recurrent cell of encoder and decoder")
    bidirectional: bool = Field(False, description="the encoder reads the source both ways")
    attention: Literal["none", "additive", "dot"] = Field(
        "none",
        description="what the decoder adds to the bottleneck (it always starts from the encoder's final state): "
        "none, or attention over every encoder state at every step, additive (Bahdanau) or dot (Luong)",
    )


def build(cfg: SeqConfig, vocab_size: int):
    from barkbench.models.seq2seq.network import Seq2Seq

    return Seq2Seq(cfg, vocab_size)


SEQ2SEQ = Family(config=SeqConfig, build=build, capacity_keys=("hidden_size",))
