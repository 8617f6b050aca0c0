"""mlstm (Beck et al. 2024, xLSTM): the matrix LSTM. Per head, a memory C [dk, dv] and a
normaliser n [dk] under an exponential input gate i and a sigmoid forget gate f:

    C_t = f_t C_{t-1} + i_t k_t v_t^T      n_t = f_t n_{t-1} + i_t k_t
    h_t = C_t^T q_t / max(|n_t . q_t|, 1)

exp(i) overflows, so xLSTM carries C and n scaled by exp(-m), with the stabiliser
m_t = max(log f_t + m_{t-1}, log i_t), and then the bound 1 becomes exp(-m_t): the stabiliser
changes how the state is stored, never the output. Trained chunk by chunk as xLSTM's
chunkwise form, every position stabilised by its own maximum of the log weights it sums.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from barkbench.models.modern.mixer import (
    Mixer,
    chunks,
    convolve,
    merge_heads,
    numel,
    run,
    short_conv,
    split_heads,
    unchunk,
    zeros_like_state,
)

CHUNK = 64  # positions per chunk


def chunked(state, q, k, v, igate, fgate):
    """q, k [B, H, T, dk], v [B, H, T, dv], the gates' pre-activations [B, H, T] (log i, and f
    before its log-sigmoid); state (C, n, m) or None.

    In a chunk that starts from (C, n, m), with F_t the forget gates' cumulative log within the
    chunk, position t sums the starting state with log weight F_t + m and position j's write with
    F_t - F_j + log i_j; each is scaled by exp(-s_t), s_t the largest of them.
    """
    B, H, T, dk = q.shape
    C, n, m = zeros_like_state(state, q, (B, H, dk, v.shape[-1]), (B, H, dk), (B, H))
    size = min(CHUNK, T)
    q, k, v = (chunks(x, size) for x in (q, k, v))
    log_i = chunks(igate, size, fill=float("-inf"))  # a padded position writes nothing ...
    F_ = chunks(F.logsigmoid(fgate), size).cumsum(-1)  # ... and forgets nothing
    # The state at each chunk's end, by a loop over chunks: the weight of j's write there is
    # F_c - F_j + log i_j, stabilised by the chunk's largest.
    into_end = F_[..., -1:] - F_ + log_i
    local = into_end.max(-1).values  # [B, H, n]
    scaled_k = k * torch.exp(into_end - local[..., None])[..., None]
    writes, key_sums = scaled_k.transpose(-1, -2) @ v, scaled_k.sum(-2)
    starts = []
    for forget, local_i, write, key_sum in zip(*(x.unbind(2) for x in (F_[..., -1], local, writes, key_sums))):
        starts.append((C, n, m))
        m_next = torch.maximum(forget + m, local_i)
        keep, add = torch.exp(forget + m - m_next), torch.exp(local_i - m_next)
        C = keep[..., None, None] * C + add[..., None, None] * write
        n = keep[..., None] * n + add[..., None] * key_sum
        m = m_next
    C0, n0, m0 = (torch.stack(s, 2) for s in zip(*starts))  # each chunk's starting state
    # Within a chunk: causal attention weighted by exp(F_t - F_j + log i_j - s_t).
    upper = torch.ones(size, size, dtype=torch.bool, device=q.device).triu(1)
    log_weights = (F_[..., :, None] - F_[..., None, :] + log_i[..., None, :]).masked_fill(upper, float("-inf"))
    from_start = F_ + m0[..., None]  # [B, H, n, c]
    s = torch.maximum(log_weights.max(-1).values, from_start)
    weights = (q @ k.transpose(-1, -2)) * torch.exp(log_weights - s[..., None])
    carried = torch.exp(from_start - s)[..., None]
    numerator = weights @ v + carried * (q @ C0)
    dot = weights.sum(-1) + carried[..., 0] * (q * n0[:, :, :, None]).sum(-1)  # n_t . q_t, scaled
    h = numerator / torch.maximum(dot.abs(), torch.exp(-s))[..., None]
    return unchunk(h, T), (C, n, m)


def step(state, q, k, v, igate, fgate):
    """One position: q, k [B, H, dk], v [B, H, dv], the gates [B, H] (xLSTM's
    recurrent_step_stabilized_simple, without its eps: max(.., exp(-m)) is never 0)."""
    B, H, dk = q.shape
    C, n, m = zeros_like_state(state, q, (B, H, dk, v.shape[-1]), (B, H, dk), (B, H))
    log_f = F.logsigmoid(fgate)
    m_next = torch.maximum(log_f + m, igate)
    f, i = torch.exp(log_f + m - m_next), torch.exp(igate - m_next)
    C = f[..., None, None] * C + i[..., None, None] * (k[..., :, None] * v[..., None, :])
    n = f[..., None] * n + i[..., None] * k
    dot = (q * n).sum(-1)
    h = (q[..., None, :] @ C).squeeze(-2) / torch.maximum(dot.abs(), torch.exp(-m_next))[..., None]
    return h, (C, n, m_next)


class MLSTM(Mixer):
    """xLSTM's mLSTM layer in the block stack: q, k and v from one projection through the short
    convolution and SiLU (xLSTM's conv branch), k scaled by 1 / sqrt(dk); the input and forget
    gates from q, k and v, one of each per head, as xLSTM's mLSTMCell; a per-head layer norm
    (its MultiHeadLayerNorm), the paper's sigmoid output gate o_t, an output projection."""

    def __init__(self, cfg):
        super().__init__()
        E, H = cfg.embedding_dim, cfg.heads
        self.heads = H
        self.qkv = nn.Linear(E, 3 * E, bias=False)
        self.conv = short_conv(3 * E, cfg.short_conv)
        self.igate = nn.Linear(3 * E, H)
        self.fgate = nn.Linear(3 * E, H)
        self.ogate = nn.Linear(E, E)
        self.norm = nn.LayerNorm(E // H, bias=False)
        self.out = nn.Linear(E, E, bias=False)

    def initialise(self):
        # xLSTM's mLSTMCell.reset_parameters: the gates start from their biases alone (zero
        # weights); forget biases spread over 3..6 across heads (bias_linspace_init_), so the heads
        # start remembering for about e^3 to e^6 steps; input biases N(0, 0.1).
        with torch.no_grad():
            nn.init.zeros_(self.fgate.weight)
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, self.heads))
            nn.init.zeros_(self.igate.weight)
            nn.init.normal_(self.igate.bias, mean=0.0, std=0.1)

    def mix(self, x, state):
        conv_state, memory = state or (None, None)
        qkv, conv_state = convolve(self.conv, self.qkv(x), conv_state)
        qkv = F.silu(qkv)
        q, k, v = (split_heads(t, self.heads) for t in qkv.chunk(3, -1))
        igate, fgate = (gate(qkv).transpose(1, 2) for gate in (self.igate, self.fgate))
        h, memory = run(chunked, step, (q, k / math.sqrt(k.shape[-1]), v, igate, fgate), memory, dim=2)
        return self.out(torch.sigmoid(self.ogate(x)) * merge_heads(self.norm(h))), (conv_state, memory)

    def state_numel(self) -> int:
        dk = self.out.in_features // self.heads
        return self.heads * (dk * dk + dk + 1) + numel(self.conv)
