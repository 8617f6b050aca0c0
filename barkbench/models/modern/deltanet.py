"""deltanet (Schlag et al. 2021; Yang et al. 2024) and gated_deltanet (Yang et al. 2025): a
matrix memory written by the delta rule, which replaces what a key recalls instead of adding to
it. Per head, with state S [dk, dv], unit-length q and k, beta in (0, 1) and, gated, a decay
alpha in (0, 1) (alpha = 1 for DeltaNet):

    S_t = alpha_t S_{t-1} + beta_t k_t (v_t - alpha_t S_{t-1}^T k_t)^T
    y_t = S_t^T q_t

Trained chunk by chunk in the WY/UT form of Yang et al. (2024), as flash-linear-attention's
chunk kernels do: within a chunk the corrections each position makes to the values of the
earlier ones are one unit-triangular solve, so only the state crosses from one chunk to the next.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from barkbench.models.modern.mixer import (
    Mixer,
    RMSNorm,
    chunks,
    convolve,
    dt_bias,
    merge_heads,
    numel,
    run,
    short_conv,
    split_heads,
    unchunk,
    zeros_like_state,
)
from barkbench.models.protocol import keep_out_of_decay

CHUNK = 32  # positions per chunk: a solve of CHUNK x CHUNK per chunk and head


def chunked(state, q, k, v, beta, log_decay=None):
    """q, k [B, H, T, dk], v [B, H, T, dv], beta [B, H, T], log_decay [B, H, T] (log alpha <= 0;
    None: DeltaNet); state S [B, H, dk, dv] or None.

    In a chunk that starts from state S, with G_t the decay's cumulative log within the chunk,
    S_t = e^{G_t} S + sum_{j <= t} e^{G_t - G_j} k_j u_j^T, where u_j is what position j writes.
    Those satisfy (I + A) U = beta (V - e^G K S) with A_tj = beta_t e^{G_t - G_j} k_t . k_j
    (j < t): U = W' - W S, by one triangular solve for W' = (I + A)^-1 beta V and
    W = (I + A)^-1 beta e^G K. Every exponent is <= 0: nothing overflows.
    """
    B, H, T, dk = q.shape
    S = zeros_like_state(state, q, (B, H, dk, v.shape[-1]))
    size = min(CHUNK, T)
    q, k, v, beta = (chunks(x, size) for x in (q, k, v, beta))  # [B, H, n, c, ...]
    kk, qk = k @ k.transpose(-1, -2), q @ k.transpose(-1, -2)
    erase = k * beta[..., None]
    keep = None  # DeltaNet: nothing decays
    if log_decay is not None:
        G = chunks(log_decay, size).cumsum(-1)  # [B, H, n, c]
        upper = torch.ones(size, size, dtype=torch.bool, device=q.device).triu(1)
        pairs = (G[..., :, None] - G[..., None, :]).masked_fill(upper, float("-inf")).exp()  # e^{G_t - G_j}, j <= t
        kk, qk = kk * pairs, qk * pairs
        start = G.exp()[..., None]  # e^{G_t}: what is left at t of the chunk's starting state
        q, erase = q * start, erase * start
        k = k * (G[..., -1:] - G).exp()[..., None]  # e^{G_c - G_j}: what is left of j's write at the chunk's end
        keep = start[..., -1:, :]  # e^{G_c}
    A = (beta[..., None] * kk).tril(-1)
    solved = torch.linalg.solve_triangular(
        A, torch.cat([v * beta[..., None], erase], -1), upper=False, unitriangular=True
    )
    written, erased = solved.split([v.shape[-1], dk], -1)  # W' and W
    keeps = [None] * q.shape[2] if keep is None else keep.unbind(2)
    outputs = []
    # The chunks, in order: only S crosses from one to the next (unbind: cheaper to differentiate than x[:, :, i]).
    for w, e, q_i, qk_i, k_i, keep_i in zip(*(x.unbind(2) for x in (written, erased, q, qk.tril(), k)), keeps):
        u = w - e @ S
        outputs.append(q_i @ S + qk_i @ u)
        S = (S if keep_i is None else S * keep_i) + k_i.transpose(-1, -2) @ u
    return unchunk(torch.stack(outputs, 2), T), S


def step(state, q, k, v, beta, log_decay=None):
    """One position: q, k [B, H, dk], v [B, H, dv], beta and log_decay [B, H]."""
    B, H, dk = q.shape
    S = zeros_like_state(state, q, (B, H, dk, v.shape[-1]))
    if log_decay is not None:
        S = S * log_decay.exp()[..., None, None]
    u = beta[..., None] * (v - (k[..., None, :] @ S).squeeze(-2))  # v minus what k recalls now
    S = S + k[..., :, None] * u[..., None, :]
    return (q[..., None, :] @ S).squeeze(-2), S


class DeltaNet(Mixer):
    """flash-linear-attention's DeltaNet layer: q, k and v from one projection, the short
    convolution, SiLU, q and k L2-normalised; beta = sigmoid of a projection, one per head; the
    recurrence per head; a per-head RMS norm; an output projection."""

    gated = False

    def __init__(self, cfg):
        super().__init__()
        E, H = cfg.embedding_dim, cfg.heads
        self.heads = H
        self.qkv = nn.Linear(E, 3 * E, bias=False)
        self.conv = short_conv(3 * E, cfg.short_conv)
        self.beta = nn.Linear(E, H, bias=False)
        self.norm = RMSNorm(E // H)
        self.out = nn.Linear(E, E, bias=False)

    def inputs(self, x, conv_state):
        """(q, k, v, beta) per head, and the convolution's state."""
        qkv, conv_state = convolve(self.conv, self.qkv(x), conv_state)
        q, k, v = (split_heads(t, self.heads) for t in F.silu(qkv).chunk(3, -1))
        beta = torch.sigmoid(self.beta(x)).transpose(1, 2)
        return (F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, beta), conv_state

    def mix(self, x, state):
        conv_state, memory = state or (None, None)
        inputs, conv_state = self.inputs(x, conv_state)
        y, memory = run(chunked, step, inputs, memory, dim=2)
        return self.out(merge_heads(self.norm(y))), (conv_state, memory)

    def state_numel(self) -> int:
        dk = self.out.in_features // self.heads
        return self.heads * dk * dk + numel(self.conv)


class GatedDeltaNet(DeltaNet):
    """DeltaNet with the decay of Mamba-2, as flash-linear-attention's GatedDeltaNet layer:
    log alpha = -exp(A_log) softplus(a x + dt_bias) per head; and its output gate, the per-head
    RMS norm times SiLU of a projection of the input."""

    def __init__(self, cfg):
        super().__init__(cfg)
        E, H = cfg.embedding_dim, cfg.heads
        self.decay = nn.Linear(E, H, bias=False)
        self.A_log = nn.Parameter(torch.zeros(H))
        self.dt_bias = nn.Parameter(torch.zeros(H))
        self.gate = nn.Linear(E, E, bias=False)
        keep_out_of_decay(self.A_log, self.dt_bias)

    def initialise(self):
        # flash-linear-attention's GatedDeltaNet (and NVlabs/GatedDeltaNet): A uniform in (0, 16),
        # kept as its log; dt_bias as Mamba's, so softplus(dt_bias) starts in [1e-3, 1e-1].
        with torch.no_grad():
            self.A_log.copy_(torch.empty_like(self.A_log).uniform_(0, 16).log())
            self.dt_bias.copy_(dt_bias(len(self.dt_bias)))

    def mix(self, x, state):
        conv_state, memory = state or (None, None)
        inputs, conv_state = self.inputs(x, conv_state)
        log_decay = (-self.A_log.exp() * F.softplus(self.decay(x) + self.dt_bias)).transpose(1, 2)
        y, memory = run(chunked, step, (*inputs, log_decay), memory, dim=2)
        gate = split_heads(F.silu(self.gate(x)), self.heads)
        return self.out(merge_heads(self.norm(y) * gate)), (conv_state, memory)
