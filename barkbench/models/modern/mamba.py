"""mamba (Gu & Dao 2023): the selective state-space block. In-projection to x and a gate z
(expand x embedding_dim channels each), a causal depthwise convolution and SiLU on x, then per
channel d a state h [N] (N = state_size) under the selective SSM, discretised by zero-order hold
for A and Euler for B as Mamba's reference does:

    h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t       y_t = C_t . h_t + D x_t

with A = -exp(A_log) (diagonal, per channel), Delta_t = softplus(dt_proj(x_t) + dt bias),
B_t, C_t [N] from x_t (shared by every channel); then y * SiLU(z) and an out-projection.
`selective: false` makes Delta, B and C learned constants per channel: the time-invariant S4D
ablation of the paper's Table 1.

Trained by a selective scan with its backward written out, as mamba_ssm's selective_scan_fn
is (there a CUDA kernel; here a loop over positions outside autograd, which on a CPU is the
faster: the state, channels x N numbers a position, makes every parallel form memory-bound).
Forward, h_t and y_t position by position; backward, the same loop run backwards, with
g_t = dL/dh_t = C_t dL/dy_t + exp(Delta_{t+1} A) g_{t+1}, from which every input's gradient at t
follows from g_t, h_{t-1} and the inputs at t. Each h_t is kept for the backward; exp(Delta A)
is found again there rather than kept, one position at a time. Every decay is <= 1, so nothing
overflows, whatever Delta and A become.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from barkbench.models.modern.mixer import Mixer, ShortConv, dt_bias, run, zeros_like_state
from barkbench.models.protocol import keep_out_of_decay


class SelectiveScan(torch.autograd.Function):
    """u, delta [batch, T, channels]; A [channels, N]; B, C [batch, T, 1 or channels, N] (1: one
    B_t, C_t shared by every channel); h0 [batch, channels, N] or None. Returns
    (y [batch, T, channels] without the D u term, the last h). Not mixer.linear_scan over
    exp(Delta A) and Delta B u: those, and their gradients, would each be a [batch, T, channels,
    N] tensor, which measured slower than finding them here one position at a time."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, h0):
        h = zeros_like_state(h0, u, (u.shape[0], *A.shape))
        states, y = [], []  # by position
        for u_t, delta_t, B_t, C_t in zip(u.unbind(1), delta.unbind(1), B.unbind(1), C.unbind(1)):
            h = torch.addcmul((delta_t * u_t)[..., None] * B_t, torch.exp(delta_t[..., None] * A), h)
            states.append(h)
            y.append((h * C_t).sum(-1))
        ctx.save_for_backward(u, delta, A, B, C, h0)
        ctx.states = states  # an intermediate: kept on ctx as it is, a list (stacking it costs a copy)
        return torch.stack(y, 1), h.clone()

    @staticmethod
    def backward(ctx, grad_y, grad_h):
        u, delta, A, B, C, h0 = ctx.saved_tensors
        states = ctx.states
        shared = B.shape[2] == 1  # then B's and C's gradients sum over the channels

        def per(x):
            return x.sum(1, keepdim=True) if shared else x

        grads = {"u": [], "delta": [], "B": [], "C": []}
        grad_A = torch.zeros_like(A)
        g = grad_h.clone()
        for t in range(u.shape[1] - 1, -1, -1):
            u_t, delta_t, B_t, C_t, dy = u[:, t], delta[:, t], B[:, t], C[:, t], grad_y[:, t, :, None]
            g = torch.addcmul(g, dy, C_t)  # dL/dh_t
            grads["C"].append(per(dy * states[t]))
            before = states[t - 1] if t else zeros_like_state(h0, g, g.shape)
            decay = torch.exp(delta_t[..., None] * A)
            through_decay = g * before * decay  # dL/d(Delta_t A)
            through_input = (g * B_t).sum(-1)  # dL/d(Delta_t u_t)
            grads["delta"].append((through_decay * A).sum(-1) + through_input * u_t)
            grads["u"].append(through_input * delta_t)
            grad_A += (through_decay * delta_t[..., None]).sum(0)
            grads["B"].append(per(g * (delta_t * u_t)[..., None]))
            g = g * decay  # dL/dh_{t-1}, as far as h_t reaches
        grad = {name: torch.stack(values[::-1], 1) for name, values in grads.items()}
        return grad["u"], grad["delta"], grad_A, grad["B"], grad["C"], g if h0 is not None else None


def scanned(state, u, delta, B, C, *, A, D):
    """u, delta [batch, T, channels]; B, C [batch, T, 1 or channels, N]; A [channels, N];
    D [channels]; state h [batch, channels, N] or None."""
    y, h = SelectiveScan.apply(u, delta, A, B, C, state)
    return y + u * D, h


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
        y, h = run(scanned, step, (u, delta, B, C), h, dim=1, A=-torch.exp(self.A_log), D=self.D)
        return self.out_proj(y * F.silu(z)), (conv_state, h)

    def state_numel(self) -> int:
        return self.channels * self.N + self.conv.state_numel()
