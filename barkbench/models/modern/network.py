"""The modern families' network: the GPT's block stack (barkbench/models/gpt/network.py) with a
recurrent sequence mixer where attention sits, so a comparison with gpt changes only the mixer.

Token embedding (no positional embedding: a recurrence knows order), pre-norm residual blocks
of mixer then feed-forward (`model.ffn: false` drops the feed-forward), final norm, linear head.
Its state is one mixer state per block, of a size that does not grow with the sequence.
"""

from __future__ import annotations

from torch import nn

from barkbench.models.modern.deltanet import DeltaNet, GatedDeltaNet
from barkbench.models.modern.linear_attention import LinearAttention
from barkbench.models.modern.mamba import Mamba
from barkbench.models.modern.minrnn import MinGRU, MinLSTM
from barkbench.models.modern.mlstm import MLSTM
from barkbench.models.parts import DecoderOnly, feed_forward, initialise
from barkbench.models.protocol import stepped_gradients

MIXERS = {
    "linear_attention": LinearAttention,
    "deltanet": DeltaNet,
    "gated_deltanet": GatedDeltaNet,
    "mamba": Mamba,
    "mlstm": MLSTM,
    "mingru": MinGRU,
    "minlstm": MinLSTM,
}


class Block(nn.Module):
    """Pre-norm: x + mixer(norm(x)), then x + feed-forward(norm(x)) unless model.ffn is false."""

    def __init__(self, cfg, mixer):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embedding_dim)
        self.mixer = mixer(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.embedding_dim) if cfg.ffn else None
        self.ffn = feed_forward(cfg) if cfg.ffn else None

    def forward(self, x, state):
        y, state = self.mixer(self.norm1(x), state)
        x = x + self.drop(y)
        if self.ffn is not None:
            x = x + self.ffn(self.norm2(x))
        return x, state


class Modern(DecoderOnly, nn.Module):
    """Its state is a list of one mixer state per block: (the short convolution's last inputs or
    None, the recurrence's state). With stepwise, every mixer reads its input one token at a time,
    as decoding does: the same function, the reference `make bench` measures the chunked forms
    against."""

    def __init__(self, cfg, vocab_size: int, mixer: str, stepwise: bool = False):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, cfg.embedding_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, MIXERS[mixer]) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, vocab_size)
        initialise(self, cfg.init)  # the stack's start (GPT-2's by default, as gpt's), then ...
        for block in self.blocks:
            block.mixer.initialise()  # ... each paper's own, which init_weights must not overwrite
            block.mixer.stepwise = stepwise

    def forward(self, tokens, state=None):
        x = self.drop(self.tok(tokens))
        states = []
        for block, s in zip(self.blocks, state or [None] * len(self.blocks)):
            x, s = block(x, s)
            states.append(s)
        return self.head(self.norm(x)), states

    def state_bytes(self, length: int | None = None) -> int:
        """Bytes per sequence of every block's mixer state: its matrix or SSM state, normaliser,
        stabiliser, and its convolution's last kernel - 1 inputs, at any length."""
        return sum(block.mixer.state_numel() for block in self.blocks) * self.head.weight.element_size()

    def gradient_states(self, x, answer_start):
        """Each block's mixer state carried out of every position, read through the recurrence:
        the chunked form keeps no state at a position."""
        return stepped_gradients(self, x, lambda states: {f"layer {i + 1} state": s for i, s in enumerate(states)})
