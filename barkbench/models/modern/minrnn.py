"""mingru and minlstm (Feng et al. 2024, "Were RNNs all we needed?"): a GRU and an LSTM whose
gates read the current input alone, so the recurrence is linear in h and trains by a parallel
scan. With hidden_size H and h~_t = g(W x_t) (g keeps it positive, as the paper's log-space form):

    mingru    z_t = sigmoid(W_z x_t)                 h_t = (1 - z_t) h_{t-1} + z_t h~_t
    minlstm   f_t, i_t = sigmoid(W_f x_t), sigmoid(W_i x_t), normalised to sum to 1
                                                     h_t = f'_t h_{t-1} + i'_t h~_t

Both are h_t = a_t h_{t-1} + b_t with 0 < a < 1 and b > 0. The paper trains them by a parallel
scan in log space (log h_t = log a*_t + logcumsumexp(log b - log a*)_t, a* the running product
of a), which a GPU needs; here the gates are found in log space as the paper's are, and the
recurrence itself runs as a linear scan (mixer.linear_scan): in linear space, where a <= 1
keeps it stable over any length, and on a CPU some ten times faster than logcumsumexp.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from barkbench.models.modern.mixer import Mixer, convolve, linear_scan, numel, run, short_conv


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log of the paper's g(x) = x + 0.5 for x >= 0, sigmoid(x) below: positive, continuous."""
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


def scanned(state, log_a, log_b):
    """h_t = a_t h_{t-1} + b_t over log_a, log_b [B, T, H]; state h [B, H] or None (zeros)."""
    states = linear_scan(log_a.exp(), log_b.exp(), state)
    return states, states[:, -1]


def step(state, log_a, log_b):
    """One position: [B, H]."""
    h = torch.exp(log_b) if state is None else torch.exp(log_a) * state + torch.exp(log_b)
    return h, h


def gru_coefficients(candidate, z):
    """log(1 - z), log(z h~) of mingru, from pre-activations."""
    return -F.softplus(z), -F.softplus(-z) + log_g(candidate)


def lstm_coefficients(candidate, f, i):
    """log f', log(i' h~) of minlstm, f' = f / (f + i), i' = i / (f + i), from pre-activations
    (the paper's log-space form: with d = softplus(-f) - softplus(-i), log f' = -softplus(d))."""
    d = F.softplus(-f) - F.softplus(-i)
    return -F.softplus(d), -F.softplus(-d) + log_g(candidate)


class MinRNN(Mixer):
    """One projection makes h~ and the gates (the paper's Linear layers, with biases), the short
    convolution if any, the scan, and an output projection from hidden_size to the width."""

    def __init__(self, cfg, coefficients, gates: int):
        super().__init__()
        H = cfg.hidden_size
        self.coefficients, self.parts = coefficients, 1 + gates
        self.proj = nn.Linear(cfg.embedding_dim, self.parts * H)
        self.conv = short_conv(self.parts * H, cfg.short_conv)
        self.out = nn.Linear(H, cfg.embedding_dim, bias=False)

    def initialise(self):
        # The paper's cells are plain nn.Linear layers: PyTorch's own start, whose spread matters
        # here. With GPT-2's 0.02 every z starts at sigmoid(0) = 1/2, so each step halves what the
        # state keeps of the past; PyTorch's start gives some units z near 0.3, which keep it. The
        # output projection keeps the stack's 0.02, as the other mixers' do.
        self.proj.reset_parameters()

    def mix(self, x, state):
        conv_state, h = state or (None, None)
        pre, conv_state = convolve(self.conv, self.proj(x), conv_state)
        states, h = run(scanned, step, self.coefficients(*pre.chunk(self.parts, -1)), h, dim=1)
        return self.out(states), (conv_state, h)

    def state_numel(self) -> int:
        return self.out.in_features + numel(self.conv)


def MinGRU(cfg) -> MinRNN:
    return MinRNN(cfg, gru_coefficients, gates=1)


def MinLSTM(cfg) -> MinRNN:
    return MinRNN(cfg, lstm_coefficients, gates=2)
