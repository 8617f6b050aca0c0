"""The modern recurrent families: linear_attention, deltanet, gated_deltanet, mamba, mlstm,
mingru and minlstm. Each is the GPT's block stack with a recurrent sequence mixer where attention
sits (barkbench/models/modern/network.py); each mixer's module holds its training form and its
one-step recurrence side by side.

    linear_attention  linear_attention.py  Katharopoulos et al. 2020
    deltanet          deltanet.py          Schlag et al. 2021; Yang et al. 2024 (chunkwise form)
    gated_deltanet    deltanet.py          Yang et al. 2025
    mamba             mamba.py             Gu & Dao 2023
    mlstm             mlstm.py             Beck et al. 2024 (xLSTM)
    mingru, minlstm   minrnn.py            Feng et al. 2024 ("Were RNNs all we needed?")
"""

from __future__ import annotations

from pydantic import Field

from barkbench.models.family import Family, ModelSection, attention_checks
from barkbench.models.gpt import INIT, Init


class ModernConfig(ModelSection):
    """The keys of every modern family besides ModelSection's."""

    name: str
    ffn: bool = Field(True, description="a feed-forward layer after each mixer; false: mixers only (zoology, Mamba)")
    # The stack's start, as gpt's (barkbench/models/parts.py); each mixer then sets its paper's own.
    init: Init = INIT


class HeadsConfig(ModernConfig):
    """linear_attention, deltanet, gated_deltanet and mlstm: `heads` split the width into heads
    of dk = dv = embedding_dim / heads, each with a dk x dv matrix memory."""

    name: str = "deltanet"
    # flash-linear-attention's default, and the Based recipe's: a short convolution before q, k and v
    # gives a recurrence the previous few tokens directly (what recall of a key's neighbour needs).
    short_conv: int = Field(4, ge=0, description="kernel of a causal depthwise convolution before q, k and v; 0: none")


class MinRNNConfig(ModernConfig):
    """mingru, minlstm: the recurrent state is `hidden_size` numbers per layer, as for a GRU, so a
    comparison with one at equal state changes only the cell."""

    name: str = "mingru"
    # Feng et al.'s cells take their gates from the current input alone, with no convolution: 0 keeps
    # the family as the paper defines it; a short convolution is there to try.
    short_conv: int = Field(0, ge=0, description="kernel of a causal depthwise convolution before the gates; 0: none")


class MambaConfig(ModernConfig):
    """mamba: its block's own convolution is `conv_size`; the state is expand x embedding_dim
    channels of state_size numbers each."""

    name: str = "mamba"
    state_size: int = Field(16, ge=1, description="N, the SSM state per channel")
    expand: int = Field(2, ge=1, description="inner channels per embedding feature")
    conv_size: int = Field(4, ge=1, description="kernel of the causal depthwise convolution before the SSM")
    selective: bool = Field(True, description="false: Delta, B and C are learned constants (time-invariant, S4D)")


def family(mixer: str, config: type[ModelSection], capacity_keys: tuple[str, ...], checks: tuple = ()) -> Family:
    """The Family of the network whose mixer is `mixer` (a name in network.MIXERS)."""

    def build(cfg, vocab_size: int, stepwise: bool = False):
        from barkbench.models.modern.network import Modern

        return Modern(cfg, vocab_size, mixer, stepwise)

    return Family(
        config=config,
        build=build,
        checks=checks,
        capacity_keys=capacity_keys,
        recurrence=lambda cfg, vocab_size: build(cfg, vocab_size, stepwise=True),
    )


HEADS = ("embedding_dim", "heads")  # a matrix memory of heads x (embedding_dim / heads)^2 numbers
HEADS_CHECKS = attention_checks("embedding_dim", None)  # heads divide the width

LINEAR_ATTENTION = family("linear_attention", HeadsConfig, HEADS, HEADS_CHECKS)
DELTANET = family("deltanet", HeadsConfig, HEADS, HEADS_CHECKS)
GATED_DELTANET = family("gated_deltanet", HeadsConfig, HEADS, HEADS_CHECKS)
MLSTM = family("mlstm", HeadsConfig, HEADS, HEADS_CHECKS)
MAMBA = family("mamba", MambaConfig, ("embedding_dim", "expand", "state_size"))
MINGRU = family("mingru", MinRNNConfig, ("hidden_size",))
MINLSTM = family("minlstm", MinRNNConfig, ("hidden_size",))
