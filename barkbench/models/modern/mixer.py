"""What every modern mixer builds on: the Mixer base (one function in two forms), the linear
scan, the short convolution, the per-head norm, chunking, and Mamba's start for a decay rate.

A mixer maps [B, T, embedding_dim] to the same, causally, carrying a state of fixed size:

    y, state = mixer(x, state=None)

Its module holds two forms of its recurrence, side by side:
    chunked(state, *inputs)  a whole sequence at once (training, prefill): matrix products within
                             chunks of positions, a loop over chunks at most, none over positions;
                             or, for the elementwise recurrences (minGRU, minLSTM, Mamba), a scan
                             whose backward is written out, so that autograd records one node for
                             the sequence rather than several per position
    step(state, *inputs)     one position (decode): the recurrence as its paper writes it
and `run` picks one. Both compute the same function (tests/test_modern.py); with `stepwise` set
a mixer reads a sequence one token at a time, as decoding does, which is what `make bench`
measures the whole-sequence form against.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Mixer(nn.Module):
    """The base of every mixer: `mix(x, state)` is its own; it reads one token or many."""

    stepwise = False  # read every sequence one token at a time (the bench's reference)

    def forward(self, x: torch.Tensor, state=None):
        if not self.stepwise or x.shape[1] == 1:
            return self.mix(x, state)
        outputs = []
        for token in x.unbind(1):  # unbind, not x[:, t]: a slice's backward zeros all of x, every step
            y, state = self.mix(token[:, None], state)
            outputs.append(y)
        return torch.cat(outputs, 1), state

    def mix(self, x: torch.Tensor, state):
        raise NotImplementedError

    def initialise(self) -> None:
        """Set the paper's own start where it has one. The network calls this after GPT-2's small
        normal start of every linear layer, which would otherwise overwrite it (mad-lab #3)."""

    def state_numel(self) -> int:
        """Elements of the state it carries from one token to the next, per sequence."""
        raise NotImplementedError


def run(chunked, step, inputs: tuple, state, dim: int, **constants):
    """A recurrence over inputs whose positions run along `dim`: its step for one position
    (decoding), its chunked form for more. Returns (outputs, state)."""
    if inputs[0].shape[dim] == 1:
        out, state = step(state, *(x.squeeze(dim) for x in inputs), **constants)
        return out.unsqueeze(dim), state
    return chunked(state, *inputs, **constants)


class LinearScan(torch.autograd.Function):
    """h_t = a_t h_{t-1} + b_t along dim 1 from h_0 (None: zeros), elementwise over the other
    dims: every h_t. The loop over positions runs outside autograd, and its backward is the same
    loop run backwards: dL/db_t = g_t = dL/dh_t + a_{t+1} g_{t+1}, dL/da_t = g_t h_{t-1}. On a
    CPU a parallel scan of so small a state costs more than this loop (its doubling steps, or
    logcumsumexp, whose backward alone took half of a minGRU's training step)."""

    @staticmethod
    def forward(ctx, a, b, h0):
        states = torch.empty_like(b)
        h = h0
        for t in range(b.shape[1]):
            h = b[:, t] if h is None else torch.addcmul(b[:, t], a[:, t], h)
            states[:, t] = h
        ctx.save_for_backward(a, states, h0)
        return states

    @staticmethod
    def backward(ctx, grad):
        a, states, h0 = ctx.saved_tensors
        g, grad_b = grad[:, -1], torch.empty_like(grad)
        grad_b[:, -1] = g
        for t in range(grad.shape[1] - 2, -1, -1):
            g = torch.addcmul(grad[:, t], a[:, t + 1], g)
            grad_b[:, t] = g
        before = torch.cat([zeros_like_state(h0, states, states[:, 0].shape)[:, None], states[:, :-1]], 1)  # h_{t-1}
        return grad_b * before, grad_b, None if h0 is None else a[:, 0] * grad_b[:, 0]


def linear_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """Every h_t of h_t = a_t h_{t-1} + b_t along dim 1 (see LinearScan)."""
    return LinearScan.apply(a, b, h0)


def chunks(x: torch.Tensor, size: int, fill: float = 0.0) -> torch.Tensor:
    """[B, H, T, ...] as [B, H, T / size, size, ...], `fill` appended up to a whole chunk. Every
    chunked form pads so that a padded position adds nothing to its state (a zero key, a decay
    of exp(0) = 1, an input gate of exp(-inf) = 0)."""
    pad = -x.shape[2] % size
    if pad:
        x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad), value=fill)
    return x.reshape(*x.shape[:2], -1, size, *x.shape[3:])


def unchunk(x: torch.Tensor, length: int) -> torch.Tensor:
    """The inverse of chunks: [B, H, n, size, ...] as [B, H, length, ...]."""
    return x.flatten(2, 3)[:, :, :length]


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, heads x d] -> [B, heads, T, d]."""
    B, T, C = x.shape
    return x.view(B, T, heads, C // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, T, d] -> [B, T, heads x d]."""
    B, H, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d)


class ShortConv(nn.Module):
    """A causal depthwise convolution over time: each channel's output at t mixes its own inputs
    at t - kernel + 1 .. t. Its state is the last kernel - 1 inputs. PyTorch's own Conv1d start,
    as flash-linear-attention and Mamba keep it."""

    def __init__(self, channels: int, kernel: int, bias: bool = False):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels, bias=bias)

    def forward(self, x: torch.Tensor, past: torch.Tensor | None):
        """x [B, T, channels] after the inputs past [B, kernel - 1, channels] (None: zeros)."""
        if past is None:
            past = x.new_zeros(x.shape[0], self.kernel - 1, x.shape[2])
        full, T = torch.cat([past, x], 1), x.shape[1]
        # As a sum of kernel shifted slices, each times its tap (weight [channels, 1, kernel]):
        # the same figures as F.conv1d with groups=channels, whose depthwise backward on CPU
        # costs six times its forward and was an eighth of a small DeltaNet's training step.
        taps, bias = self.conv.weight[:, 0].t(), self.conv.bias
        y = full[:, :T] * taps[0] if bias is None else torch.addcmul(bias, full[:, :T], taps[0])
        for i in range(1, self.kernel):
            y = torch.addcmul(y, full[:, i : i + T], taps[i])
        return y, full[:, T:]  # the last kernel - 1 inputs

    def state_numel(self) -> int:
        return self.conv.in_channels * (self.kernel - 1)


def short_conv(channels: int, kernel: int) -> ShortConv | None:
    """model.short_conv's convolution over these channels, or None for 0."""
    return ShortConv(channels, kernel) if kernel else None


def convolve(conv: ShortConv | None, x: torch.Tensor, past):
    """x through the convolution if there is one: (y, its state)."""
    return (x, None) if conv is None else conv(x, past)


def numel(module: nn.Module | None) -> int:
    """A part's state elements (0 for a part that is not there)."""
    return 0 if module is None else module.state_numel()


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension with a gain (Zhang & Sennrich 2019): the
    per-head output norm of flash-linear-attention's DeltaNet and Gated DeltaNet."""

    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4  # Mamba's dt_min, dt_max, dt_init_floor


def dt_bias(size: int) -> torch.Tensor:
    """Mamba's start for a step size Delta = softplus(bias): dt drawn log-uniformly in
    [DT_MIN, DT_MAX] (floored at DT_FLOOR), then the bias that softplus maps to it (its inverse,
    dt + log(1 - exp(-dt))). Gated DeltaNet starts its decay's step the same way."""
    dt = torch.exp(torch.rand(size) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN)).clamp(min=DT_FLOOR)
    return dt + torch.log(-torch.expm1(-dt))


def zeros_like_state(state, reference: torch.Tensor, *shapes):
    """The state, or zeros of these shapes (on reference's device and dtype) where it is None."""
    if state is not None:
        return state
    made = tuple(reference.new_zeros(shape) for shape in shapes)
    return made[0] if len(made) == 1 else made
