"""The tanh RNN's and the GRU's recurrences with their backward written out: what BarkRNN trains
them with on a CPU.

PyTorch runs nn.RNN and nn.GRU on a CPU as a loop of autograd operations, several nodes per
position and layer (nn.LSTM goes to oneDNN's fused kernel, about twice as fast as a scan written
this way, and is left to it). Here each layer is one autograd node: the input's share of every
gate, for the whole sequence, is one matrix product before the loop (autograd's, in `recur`);
the loop over positions does the rest with a few operations a position, writing into tensors
made once; the backward is the same loop run backwards, with what does not depend on the carried
gradient found for every position at once before it, and the weight gradient one matrix product
over every position after it (as cuDNN arranges it). That measured 1.1 to 1.3 times as fast as
the module at the studies' shapes (`make bench`, part scans): a position's few operations on a
[batch, H] state cost microseconds each, whoever issues them. Each computes what the nn module
computes, with the module's own weights: tests/test_models.py holds them to it, and to the
textbook loop of cells. On CUDA `recur` leaves it to the module, whose cuDNN kernel is the
faster.

A scan takes gi [T, B, gates x H], the input's share of every gate with the biases that add to
it (time first: a position is one block), h0 [B, H] and w_hh [gates x H, H], and returns every
h_t, [T, B, H].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TanhScan(torch.autograd.Function):
    """h_t = tanh(gi_t + W_hh h_{t-1}); backward a_t = (dL/dh_t + W_hh^T a_{t+1}) (1 - h_t^2)."""

    @staticmethod
    def forward(ctx, gi, h0, w_hh):
        h = gi.new_empty(len(gi) + 1, *h0.shape)
        h[0] = h0
        w_t, hs = w_hh.t(), h.unbind(0)  # views made once: indexing a tensor each position costs more
        for t, gi_t in enumerate(gi.unbind(0)):
            torch.addmm(gi_t, hs[t], w_t, out=hs[t + 1]).tanh_()
        ctx.save_for_backward(h, w_hh)
        return h[1:]

    @staticmethod
    def backward(ctx, grad):
        no_double_backward()
        h, w_hh = ctx.saved_tensors
        slope = 1 - h[1:] * h[1:]  # tanh' at every position, in one operation
        grad_a = torch.empty_like(grad)  # dL/d(gi_t + W_hh h_{t-1})
        carried = torch.zeros_like(h[0])  # dL/dh_t through h_{t+1}
        for grad_t, slope_t, out in reversed(list(zip(grad.unbind(0), slope.unbind(0), grad_a.unbind(0)))):
            torch.add(grad_t, carried, out=out).mul_(slope_t)
            carried = out @ w_hh
        return grad_a, carried, weight_grad(grad_a, h[:-1])


class GRUScan(torch.autograd.Function):
    """PyTorch's GRU, gates (r, z, n), b_hh's n part inside r's product (so it comes separately):
    r, z = sigmoid(gi_rz + W_hrz h + b_hrz); n = tanh(gi_n + r (W_hn h + b_hn));
    h_t = n + z (h_{t-1} - n)."""

    @staticmethod
    def forward(ctx, gi, h0, w_hh, b_hh):
        T, H = len(gi), h0.shape[-1]
        h = gi.new_empty(T + 1, *h0.shape)
        h[0] = h0
        gh, rz, n = torch.empty_like(gi), gi.new_empty(T, len(h0), 2 * H), gi.new_empty(T, *h0.shape)
        w_t, hs = w_hh.t(), h.unbind(0)
        steps = zip(gi[..., : 2 * H].unbind(0), gi[..., 2 * H :].unbind(0), gh.unbind(0), rz.unbind(0), n.unbind(0))
        for t, (gi_rz, gi_n, gh_t, rz_t, n_t) in enumerate(steps):
            torch.addmm(b_hh, hs[t], w_t, out=gh_t)
            torch.add(gi_rz, gh_t[:, : 2 * H], out=rz_t).sigmoid_()
            torch.addcmul(gi_n, rz_t[:, :H], gh_t[:, 2 * H :], out=n_t).tanh_()
            torch.lerp(n_t, hs[t], rz_t[:, H:], out=hs[t + 1])
        ctx.save_for_backward(h, gh, rz, n, w_hh)
        return h[1:]

    @staticmethod
    def backward(ctx, grad):
        no_double_backward()
        h, gh, rz, n, w_hh = ctx.saved_tensors
        T, B, H = n.shape
        z = rz[..., H:]
        # dL/d(W_hh h_{t-1} + b_hh) is dL/dh_t times a factor per gate, the same for every path
        # through h_t: found for every position at once, so that the loop is four operations a position.
        to_n = (1 - z) * (1 - n * n)  # dL/d(n's argument) per dL/dh_t
        factor = torch.stack(
            [to_n * gh[..., 2 * H :] * rz[..., :H] * (1 - rz[..., :H]), z * (1 - z) * (h[:-1] - n), to_n * rz[..., :H]],
            2,
        )  # [T, B, 3 (r, z, n), H]
        grad_gh, grad_h = torch.empty_like(factor), torch.empty_like(n)  # grad_h: dL/dh_t, every path
        carried = torch.zeros_like(h[0])
        steps = zip(grad.unbind(0), grad_h.unbind(0), factor.unbind(0), grad_gh.unbind(0), z.unbind(0))
        for grad_t, dh, factor_t, out, z_t in reversed(list(steps)):
            torch.add(grad_t, carried, out=dh)
            torch.mul(factor_t, dh[:, None], out=out)
            carried = torch.addmm(dh * z_t, out.view(B, 3 * H), w_hh)
        grad_gh = grad_gh.view(T, B, 3 * H)
        grad_gi = torch.cat([grad_gh[..., : 2 * H], grad_h * to_n], -1)
        return grad_gi, carried, weight_grad(grad_gh, h[:-1]), grad_gh.sum((0, 1))


def no_double_backward() -> None:
    """The backward passes are written with out= operations that autograd does not record: asked for
    a graph of them (create_graph=True, a second derivative), say so rather than give a wrong one."""
    if torch.is_grad_enabled():
        raise NotImplementedError(
            "the tanh RNN's and the GRU's scans have no second derivative; take it on CUDA, where the module runs"
        )


# The weights of each layer of an nn.RNNBase, as its attributes name them with _l{layer} (and
# _reverse) after them; a cell (nn.GRUCell, ...) names its own the same, without the suffix.
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def weight_grad(grad_a: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """dL/dW_hh = sum over positions and rows of grad_a_t h_{t-1}^T: one product for the sequence."""
    return grad_a.flatten(0, 1).t() @ before.flatten(0, 1)


def scanned(core: nn.RNNBase, x: torch.Tensor) -> bool:
    """Whether `recur` runs this core's recurrence by a scan here: a tanh nn.RNN or an nn.GRU as
    BarkRNN makes them (batch first, one direction, with biases) over a batch, off CUDA. The scans
    call no module, so hooks on the core do not fire for them."""
    tanh = isinstance(core, nn.RNN) and core.nonlinearity == "tanh"
    made = (tanh or isinstance(core, nn.GRU)) and core.batch_first and core.bias and not core.bidirectional
    return made and x.dim() == 3 and not x.is_cuda


def recur(core: nn.RNNBase, x: torch.Tensor, state: torch.Tensor | None = None):
    """What core(x, state) returns, (outputs [B, T, H], final state [layers, B, H]), computed by
    the scans with the core's weights where they apply (`scanned`), by the core elsewhere."""
    if not scanned(core, x):
        return core(x, state)
    if state is None:
        state = x.new_zeros(core.num_layers, len(x), core.hidden_size)
    x, finals = x.transpose(0, 1), []
    for layer in range(core.num_layers):
        w_ih, w_hh, b_ih, b_hh = (getattr(core, f"{name}_l{layer}") for name in WEIGHTS)
        if isinstance(core, nn.GRU):  # b_hh's n part is inside r's product: it goes in apart
            h = GRUScan.apply(F.linear(x, w_ih, b_ih), state[layer], w_hh, b_hh)
        else:
            h = TanhScan.apply(F.linear(x, w_ih, b_ih + b_hh), state[layer], w_hh)
        finals.append(h[-1])
        last = layer == core.num_layers - 1
        x = h if last else F.dropout(h, core.dropout, core.training)  # as the module: between layers
    return x.transpose(0, 1), torch.stack(finals)
