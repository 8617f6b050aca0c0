"""mamba (Gu & Dao 2023): the selective state-space block. In-projection to x and a gate z
(expand x embedding_dim channels each), a causal depthwise convolution and SiLU on x, then per
channel d a state h [N] (N = state_size) under the selective SSM, discretised by zero-order hold
for A and Euler for B as Mamba's reference does:

    h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t       y_t = C_t . h_t + D x_t

with A = -exp(A_log) (diagonal, per channel), Delta_t = softplus(dt_proj(x_t) + dt bias),
B_t, C_t [N] from x_t (shared by every channel); then y * SiLU(z) and an out-projection.
`selective: false` makes Delta, B and C learned constants per channel: the time-invariant S4D
ablation of the paper's Table 1.

Trained by a chunked scan: within a chunk of positions every h_t is found at once by
Hillis-Steele doubling (log2 of the chunk's length steps, each composing the maps
h -> a h + b with those 1, 2, 4, ... positions back); the last h of a chunk starts the next.
Every product is of decays <= 1, so nothing overflows, whatever Delta and A become (the
cumulative-sum shortcut, exp(L_t) cumsum(exp(-L_s) b_s), overflows once a chunk decays by e^88).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from barkbench.models.modern.mixer import Mixer, ShortConv, dt_bias, run, zeros_like_state
from barkbench.models.protocol import keep_out_of_decay

# Positions per chunk. The scan's state, channels x N numbers a position (2048 at the defaults),
# makes it memory-bound on a CPU: each doubling step costs more than the loop calls it saves.
# Measured on this project's 2-core machine, one layer forward and backward at length 255:
# chunks of 2, 4, 8, 16 took 0.4, 0.5, 0.65, 0.85 of the time of the one-token recurrence.
# 4 keeps a real chunked scan (two doubling steps) at half the recurrence's time.
CHUNK = 4


def scan(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inclusive scan of the maps h -> a_t h + b_t along dim 1: (a_1..t's product, the h_t
    that they make from h_0 = 0). Each doubling step composes every map with the one `shift`
    positions back; the first `shift` have none and stay as they are."""
    shift, length = 1, a.shape[1]
    while shift < length:
        (a_head, a_tail), (b_head, b_tail) = a.split([shift, length - shift], 1), b.split([shift, length - shift], 1)
        a_back, b_back = a.narrow(1, 0, length - shift), b.narrow(1, 0, length - shift)
        a, b = torch.cat([a_head, a_tail * a_back], 1), torch.cat([b_head, b_tail + a_tail * b_back], 1)
        shift *= 2
    return a, b


def chunked(state, u, delta, B, C, *, A, D):
    """u, delta [batch, T, channels]; B, C [batch, T, 1 or channels, N]; A [channels, N];
    D [channels]; state h [batch, channels, N] or None."""
    h = zeros_like_state(state, u, (u.shape[0], *A.shape))
    outputs = []
    # The chunks, in order: only h crosses from one to the next.
    for u_c, delta_c, B_c, C_c in zip(*(x.split(CHUNK, 1) for x in (u, delta, B, C))):
        decay, first = scan(torch.exp(delta_c[..., None] * A), (delta_c * u_c)[..., None] * B_c)
        states = decay * h[:, None] + first
        outputs.append((states * C_c).sum(-1))
        h = states[:, -1]
    return torch.cat(outputs, 1) + u * D, h


def step(state, u, delta, B, C, *, A, D):
    """One position: u, delta [batch, channels]; B, C [batch, 1 or channels, N]."""
    h = zeros_like_state(state, u, (u.shape[0], *A.shape))
    h = torch.exp(delta[..., None] * A) * h + (delta * u)[..., None] * B
    return (h * C).sum(-1) + u * D, h


class Mamba(Mixer):
    """Mamba's block (mamba_ssm's Mamba, mamba_simple.py) with its initialisation."""

    def __init__(self, cfg):
        super().__init__()
        E, N = cfg.embedding_dim, cfg.state_size
        self.channels = channels = cfg.expand * E
        self.rank = math.ceil(E / 16)  # Mamba's dt_rank "auto"
        self.N = N
        self.in_proj = nn.Linear(E, 2 * channels, bias=False)
        self.conv = ShortConv(channels, cfg.conv_size, bias=True)
        if cfg.selective:
            self.x_proj = nn.Linear(channels, self.rank + 2 * N, bias=False)
            self.dt_proj = nn.Linear(self.rank, channels)  # its bias is Delta's
        else:
            self.dt_bias = nn.Parameter(torch.zeros(channels))
            self.B = nn.Parameter(torch.ones(channels, N))
            self.C = nn.Parameter(torch.zeros(channels, N))
        self.selective = cfg.selective
        self.A_log = nn.Parameter(torch.zeros(channels, N))
        self.D = nn.Parameter(torch.ones(channels))
        self.out_proj = nn.Linear(channels, E, bias=False)
        self.residuals = cfg.layers * (2 if cfg.ffn else 1)  # residual branches in the whole stack
        keep_out_of_decay(self.A_log)  # D and Delta's bias have one dimension: no decay anyway

    def initialise(self):
        # mamba_ssm's _init_weights keeps PyTorch's own start for the linear layers (GPT-2's 0.02
        # makes B_t and C_t so small that the SSM starts all but silent), with out_proj's scaled
        # down by sqrt(residual branches), as GPT-2 does for the layers that end a residual branch.
        for layer in (self.in_proj, self.out_proj, *([self.x_proj] if self.selective else [])):
            layer.reset_parameters()
        with torch.no_grad():
            self.out_proj.weight /= math.sqrt(self.residuals)
            # S4D-real: A = -(1, 2, ..., N) in every channel, kept as its log; D = 1.
            self.A_log.copy_(torch.arange(1, self.N + 1, dtype=torch.float32).log().expand_as(self.A_log))
            self.D.fill_(1.0)
            if self.selective:
                # "preserve variance at initialization": dt_proj's weight uniform in +-rank^-0.5
                bound = self.rank**-0.5
                self.dt_proj.weight.uniform_(-bound, bound)
                self.dt_proj.bias.copy_(dt_bias(self.channels))
            else:
                # S4D's start for the time-invariant SSM: the same Delta, B = 1, C standard normal.
                self.dt_bias.copy_(dt_bias(self.channels))
                self.B.fill_(1.0)
                self.C.normal_()

    def mix(self, x, state):
        conv_state, h = state or (None, None)
        u, z = self.in_proj(x).chunk(2, -1)
        u, conv_state = self.conv(u, conv_state)
        u = F.silu(u)
        batch, T, channels = u.shape
        if self.selective:
            dt, B, C = self.x_proj(u).split([self.rank, self.N, self.N], -1)
            delta = F.softplus(self.dt_proj(dt))
            B, C = B[:, :, None], C[:, :, None]  # one B_t and C_t for every channel
        else:
            delta = F.softplus(self.dt_bias).expand(batch, T, channels)
            B, C = (p.expand(batch, T, channels, self.N) for p in (self.B, self.C))
        y, h = run(chunked, step, (u, delta, B, C), h, dim=1, A=-torch.exp(self.A_log), D=self.D)
        return self.out_proj(y * F.silu(z)), (conv_state, h)

    def state_numel(self) -> int:
        return self.channels * self.N + self.conv.state_numel()
