"""Seq2Seq: a recurrent encoder reads the prompt, a recurrent decoder writes the answer.

    encoder   embedding, then `model.cell` (tanh RNN, LSTM or GRU), `model.bidirectional`
    bridge    the decoder starts from the encoder's final state, layer for layer; a bidirectional
              encoder ends each layer with a forward and a backward state, and the decoder's
              initial state is tanh(W [forward; backward] + b) of the pair (Bahdanau's
              s0 = tanh(W h1_backward), given both ends), one W for h and one for an LSTM's c
    decoder   the same cell over the target, from that state
    attention `none`: nothing else, all the source must pass through the final state (the
              bottleneck). `additive` / `dot`: at every step the decoder's output s_t reads all
              encoder states h_i (barkbench/models/attention.py's ALIGNMENT), and
              tanh(W_c [context; s_t]) goes on to the head (Luong's attentional hidden state).
              A bidirectional encoder's states (2H) are first mapped to the decoder's H.

The attention is Luong's arrangement, computed from the decoder's outputs after the recurrence,
with no input feeding (the context does not go back into the next step's input): so teacher
forcing runs the decoder over the whole target in one fused call, with no Python loop over time,
which is what makes a study of several seq2seq models affordable on a CPU. The additive score is
Bahdanau's, v . tanh(W s + U h); the dot score is Luong's, s . h.
"""

from __future__ import annotations

import torch
from torch import nn

from barkbench.models.attention import ALIGNMENT
from barkbench.models.parts import EncoderDecoder, on_x, real_tokens
from barkbench.models.recurrent.network import CELLS, CORES
from barkbench.models.recurrent.scan import WEIGHTS


class Seq2Seq(EncoderDecoder, nn.Module):
    """Its state is (the decoder's recurrent state, the attention's memory of the source or None)."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        E, H, states = cfg.embedding_dim, cfg.hidden_size, 2 if cfg.cell == "lstm" else 1
        self.embed = nn.Embedding(vocab_size, E)  # one vocabulary: source and target share it

        def core(bidirectional: bool):
            dropout = cfg.dropout if cfg.layers > 1 else 0.0  # torch only drops between layers
            return CORES[cfg.cell](E, H, cfg.layers, batch_first=True, dropout=dropout, bidirectional=bidirectional)

        self.encoder, self.decoder = core(cfg.bidirectional), core(False)
        self.cell = CELLS[cfg.cell]  # the one-step form of the cores, for gradient_states
        self.bridge = nn.ModuleList(nn.Linear(2 * H, H) for _ in range(states)) if cfg.bidirectional else None
        self.attn = ALIGNMENT[cfg.attention](H, cfg.dropout) if cfg.attention != "none" else None
        self.memory = nn.Linear(2 * H, H) if self.attn and cfg.bidirectional else None  # encoder states to H
        self.combine = nn.Linear(2 * H, H) if self.attn else None  # W_c
        self.norm = nn.LayerNorm(H)
        self.head = nn.Linear(H, vocab_size)
        self.cache_length = cfg.context_length  # the length the encoder states attention keeps are reported at
        self.carried = None  # a list while gradient_states runs: the recurrences leave their states there

    def encode(self, source, lengths):
        out, final = self.recur(self.encoder, self.embed(source), lengths)
        if self.bridge is not None:
            final = self.bridged(final)
        if self.attn is None:
            return final, None
        states = out if self.memory is None else self.memory(out)
        return final, self.attn.memory(states, real_tokens(lengths, source.shape[1]))

    def forward(self, target, state):
        hidden, memory = state
        out, hidden = self.recur(self.decoder, self.embed(target), None, hidden)
        if self.attn is not None:
            out = torch.tanh(self.combine(torch.cat([self.attn(out, memory), out], -1)))
        return self.head(self.norm(out)), (hidden, memory)

    def bridged(self, final):
        """A bidirectional encoder's final state [layers x 2, B, H] (an LSTM's h and c) as the
        decoder's initial one [layers, B, H]: tanh(W [forward; backward] + b) per layer."""
        tensors = final if isinstance(final, tuple) else (final,)
        layers = tensors[0].shape[0] // 2
        bridged = tuple(
            torch.tanh(w(torch.cat(t.reshape(layers, 2, *t.shape[1:]).unbind(1), -1)))
            for w, t in zip(self.bridge, tensors)
        )
        return bridged if isinstance(final, tuple) else bridged[0]

    def recur(self, core, inputs, lengths, state=None):
        """core over inputs [B, S, E] from state. Sources of different lengths are packed, so that
        a row's final state is the one at its last real token, on every layer, and a bidirectional
        encoder's backward pass starts there rather than in the pads (gathering the outputs at the
        last real token would give the top layer's forward state alone). Unrolled while
        gradient_states runs."""
        if self.carried is not None:
            out, final, carried = unrolled(core, self.cell, inputs, lengths, state)
            self.carried.append(carried)
            return out, final
        if lengths is None:
            return core(inputs, state)
        packed = nn.utils.rnn.pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = core(packed, state)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=inputs.shape[1])[0], final

    def state_bytes(self, length: int | None = None) -> int:
        """Bytes of state per sequence: the decoder's hidden vector per layer (two for an LSTM: h
        and c), plus, with attention, the encoder states it keeps for a source of `length` tokens
        (default context_length)."""
        size, H = self.head.weight.element_size(), self.decoder.hidden_size
        vectors = self.decoder.num_layers * (2 if isinstance(self.decoder, nn.LSTM) else 1)
        if self.attn is not None:
            vectors += self.attn.memory_vectors * (length or self.cache_length)
        return vectors * H * size

    def attention_layers(self) -> list:
        return []  # no self-attention

    def alignment_layers(self) -> list:
        return [self.attn] if self.attn is not None else []

    def gradient_states(self, x, answer_start):
        """The encoder's state at every source position (every layer and direction: all the
        decoder gets of the source, through the final state and, with attention, directly) and
        the decoder's at every answer position (its own prediction included, as for gpt's
        residual stream). Both recurrences run unrolled, so that each state is a tensor of its
        own, which the fused cores do not give."""
        self.carried = []
        try:
            logits = self.teacher_forcing(x, answer_start)
            encoder, decoder = self.carried
        finally:
            self.carried = None

        def norms(carried: list, source: bool) -> torch.Tensor:
            """Per position, the norm of the gradients of every state tensor carried out of it
            (zero where none has one: nothing depends on it), at x's positions; row 0's."""
            zero = logits.new_zeros(len(x))
            squares = [sum((s.grad.pow(2).sum(-1) for s in states if s.grad is not None), zero) for states in carried]
            return on_x(torch.stack(squares, 1).sqrt(), answer_start, x.shape[1], source, float("nan"))[0]

        return logits, lambda: {"encoder state": norms(encoder, True), "decoder state": norms(decoder, False)}


def cell_of(core, cell_type, layer: int, direction: int) -> nn.Module:
    """One layer and direction of a fused core as a cell, holding the core's own weight tensors."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    weights = {name: getattr(core, name + suffix) for name in WEIGHTS}
    cell = cell_type(weights["weight_ih"].shape[1], core.hidden_size)
    for name, weight in weights.items():
        setattr(cell, name, weight)
    return cell


def unrolled(core, cell_type, inputs, lengths, state=None):
    """The fused core's recurrence written out one cell call at a time, layer by layer and
    direction by direction, with its weights: what `recur` computes, but every state carried out
    of a position is a tensor of its own, whose gradient gradient_states reads. Past a row's
    length its forward state stands still and its backward state has not started, as packing
    makes the core do. No dropout between layers: it is for evaluation.

    Returns the core's (outputs [B, S, directions x H], final state) and, per position, the
    state tensors carried out of it.
    """
    B, S, _ = inputs.shape
    dirs, lstm = 2 if core.bidirectional else 1, isinstance(core, nn.LSTM)
    if state is None:
        zeros = inputs.new_zeros(core.num_layers * dirs, B, core.hidden_size)
        state = (zeros, zeros) if lstm else zeros
    state = state if lstm else (state,)  # a tuple of tensors either way: (h,) or an LSTM's (h, c)
    real = real_tokens(torch.full((B,), S, device=inputs.device) if lengths is None else lengths, S)[..., None]
    carried, finals, x = [[] for _ in range(S)], [], inputs
    for layer in range(core.num_layers):
        outputs = []
        for direction in range(dirs):
            cell, h = cell_of(core, cell_type, layer, direction), tuple(s[layer * dirs + direction] for s in state)
            out = [None] * S
            for t in range(S - 1, -1, -1) if direction else range(S):
                new = cell(x[:, t], h if lstm else h[0])
                h = tuple(torch.where(real[:, t], n, old) for n, old in zip(new if lstm else (new,), h))
                for s in h:
                    s.retain_grad()
                carried[t].extend(h)
                out[t] = h[0]
            outputs.append(torch.stack(out, 1))
            finals.append(h)
        x = torch.cat(outputs, -1)
    final = tuple(torch.stack(f) for f in zip(*finals))
    return x, final if lstm else final[0], carried
