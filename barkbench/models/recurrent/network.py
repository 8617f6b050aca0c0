"""BarkRNN: embedding, a recurrent core (tanh RNN, LSTM or GRU), optionally causal attention
over the recurrent states (the bridge to the transformer), layer norm, linear head; and
StepByStepRNN, the same recurrence as a Python loop of cells, the baseline `make bench`
measures the fused recurrences against. The core is PyTorch's module, which holds the weights;
on a CPU the tanh RNN's and the GRU's recurrence runs by scan.py's scans, the LSTM's by the
module's fused kernel."""

from __future__ import annotations

import torch
from torch import nn

from barkbench.models.parts import DecoderOnly, build_attention, cache_bytes
from barkbench.models.recurrent.scan import WEIGHTS, recur

CORES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


class BarkRNN(DecoderOnly, nn.Module):
    """Its state is (the recurrent state, the attention's key/value cache or None)."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.embedding_dim)
        self.core = CORES[cfg.name](
            cfg.embedding_dim,
            cfg.hidden_size,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,  # torch only drops between layers
        )
        if isinstance(self.core, nn.LSTM):
            with torch.no_grad():  # the gates are stacked (input, forget, cell, output) in each bias
                for layer in range(cfg.layers):
                    forget = slice(cfg.hidden_size, 2 * cfg.hidden_size)
                    getattr(self.core, f"bias_ih_l{layer}")[forget] = cfg.forget_bias
                    getattr(self.core, f"bias_hh_l{layer}")[forget] = 0.0
        self.attn = build_attention(cfg, cfg.hidden_size)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size) if self.attn else None
        self.norm = nn.LayerNorm(cfg.hidden_size)
        self.head = nn.Linear(cfg.hidden_size, vocab_size)
        self.cache_length = cfg.context_length  # the length its attention's cache is reported at

    def forward(self, tokens, state=None):
        hidden, cache = state or (None, None)
        out, hidden = recur(self.core, self.embed(tokens), hidden)
        if self.attn is not None:
            a, cache = self.attn(self.attn_norm(out), cache)
            out = out + a
        return self.head(self.norm(out)), (hidden, cache)

    def state_bytes(self, length: int | None = None) -> int:
        """Bytes of state per sequence: one hidden vector per layer (two for an LSTM: h and c),
        plus, with attention, its key/value cache at `length` positions (default context_length)."""
        size = self.head.weight.element_size()
        vectors = self.core.num_layers * (2 if isinstance(self.core, nn.LSTM) else 1)
        attention = cache_bytes(1, length or self.cache_length, self.core.hidden_size, size) if self.attn else 0
        return vectors * self.core.hidden_size * size + attention

    def attention_layers(self) -> list:
        return [self.attn] if self.attn is not None else []

    def gradient_states(self, x, answer_start):
        """The recurrent state carried out of every position.

        The model runs one token at a time so that each carried state is a tensor of its own: its
        gradient is everything the later positions, the answer among them, ask of it.
        """
        state, carried, logits = None, [], []
        for t in range(x.shape[1]):
            out, state = self(x[:, t : t + 1], state)
            hidden = state[0] if isinstance(state[0], tuple) else (state[0],)  # (h,) or an LSTM's (h, c)
            for h in hidden:
                h.retain_grad()
            carried.append(hidden)
            logits.append(out)

        def read():
            norms = [sum(float(h.grad.pow(2).sum()) for h in hidden if h.grad is not None) ** 0.5 for hidden in carried]
            return {"recurrent state": torch.tensor(norms)}

        return torch.cat(logits, 1), read


class StepByStepRNN(DecoderOnly, nn.Module):
    """BarkRNN without attention, its recurrence written as the textbook loop: one cell call per
    token and layer. Given BarkRNN's weights (load_fused) it computes the same outputs."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.embedding_dim)
        sizes = [cfg.embedding_dim] + [cfg.hidden_size] * (cfg.layers - 1)
        self.cells = nn.ModuleList(CELLS[cfg.name](size, cfg.hidden_size) for size in sizes)
        self.norm = nn.LayerNorm(cfg.hidden_size)
        self.head = nn.Linear(cfg.hidden_size, vocab_size)

    def forward(self, tokens, state=None):
        x = self.embed(tokens)
        state = state or [None] * len(self.cells)
        for i, cell in enumerate(self.cells):
            outputs, h = [], state[i]
            for t in range(x.shape[1]):
                h = cell(x[:, t], h)
                outputs.append(h[0] if isinstance(h, tuple) else h)  # an LSTM cell returns (h, c)
            x, state[i] = torch.stack(outputs, 1), h
        return self.head(self.norm(x)), state

    def load_fused(self, model: BarkRNN) -> None:
        """Take BarkRNN's weights: layer l of the fused core is cell l."""
        with torch.no_grad():
            for layer, cell in enumerate(self.cells):
                for name in WEIGHTS:
                    getattr(cell, name).copy_(getattr(model.core, f"{name}_l{layer}"))
            for mine, theirs in ((self.embed, model.embed), (self.norm, model.norm), (self.head, model.head)):
                mine.load_state_dict(theirs.state_dict())
