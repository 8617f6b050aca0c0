"""rnn, lstm, gru: BarkRNN, a recurrent core (tanh RNN, LSTM or GRU) between an embedding and a
linear head (barkbench/models/recurrent/network.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from barkbench.models.family import Family, ModelSection, attention_checks


class RecurrentConfig(ModelSection):
    name: str = "rnn"
    attention: Literal["mha", "wrapper", "single", "simple", "none"] = Field(
        "none", description="none, or causal attention over the recurrent states: mha, wrapper, single, simple"
    )
    # PyTorch starts an LSTM's forget gates at bias 0: half of the cell is forgotten at every step
    # until training learns otherwise. Fair comparisons start it at 1 (Gers et al. 2000; Jozefowicz
    # et al. 2015), so that an LSTM begins by remembering; 0 gives PyTorch's own start.
    forget_bias: float = Field(1.0, description="lstm only: the forget gates' starting bias")


def build(cfg: RecurrentConfig, vocab_size: int):
    from barkbench.models.recurrent.network import BarkRNN

    return BarkRNN(cfg, vocab_size)


def reference(cfg: RecurrentConfig, vocab_size: int):
    from barkbench.models.recurrent.network import StepByStepRNN

    return StepByStepRNN(cfg, vocab_size)


RNN = LSTM = GRU = Family(
    config=RecurrentConfig,
    build=build,
    checks=attention_checks("hidden_size", ("mha", "wrapper")),
    capacity_keys=("hidden_size",),
    reference=reference,
)
