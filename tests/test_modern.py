"""The modern recurrent families: each mixer's training form equals its one-step recurrence, and
both equal a reference written here from the paper's equations; the model trained through its
recurrence equals the chunked one, padded or not; each starts as its paper does; the keys and
the state they set. The contract every model keeps is in test_models.py."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import PNG, SMALL, V, model_config, random_tokens, small_model, state_size

from barkbench.cli import app
from barkbench.models import MODELS, count_params
from barkbench.models.modern import deltanet, linear_attention, mamba, minrnn, mlstm
from barkbench.models.modern.mixer import ShortConv, linear_scan
from barkbench.models.protocol import Defaults
from barkbench.trainer import build_optimizer
from barkbench.vocab import PAD

FAMILIES = ["linear_attention", "deltanet", "gated_deltanet", "mamba", "mlstm", "mingru", "minlstm"]
# Below, at and past every family's chunk (4, 32 and 64 positions), mostly not a multiple of it.
LENGTHS = [1, 2, 7, 32, 33, 64, 129]
TOLERANCE = 1e-5  # fp32, absolute, on outputs of order 1


def stepped(step, state, *inputs, dim: int, **constants):
    """The recurrence one position at a time: (outputs stacked along dim, the last state)."""
    outputs = []
    for position in zip(*(x.unbind(dim) for x in inputs)):
        y, state = step(state, *position, **constants)
        outputs.append(y)
    return torch.stack(outputs, dim), state


def close(a, b):
    """Within 1e-5, absolute, or relative where a value is large (a normaliser sums positives, an
    mLSTM output is its memory read over a small normaliser)."""
    torch.testing.assert_close(a, b, atol=TOLERANCE, rtol=TOLERANCE)


def close_states(a, b):
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        close(x, y)


# ---- references, from the papers' equations --------------------------------------------------


def linear_attention_reference(q, k, v, S0, z0):
    """Katharopoulos et al. 2020, eq. 5 made causal, in its quadratic form:
    V'_i = phi(Q_i)^T (S0 + sum_{j<=i} phi(K_j) V_j^T) / phi(Q_i)^T (z0 + sum_{j<=i} phi(K_j))."""
    scores = (q @ k.transpose(-1, -2)).tril()
    numerator = scores @ v + q @ S0
    denominator = scores.sum(-1) + (q * z0[:, :, None]).sum(-1)
    y = numerator / (denominator[..., None] + linear_attention.EPS)
    return y, (S0 + k.transpose(-1, -2) @ v, z0 + k.sum(2))


def delta_rule_reference(q, k, v, beta, alpha, S):
    """Yang et al. 2024/2025 in their transition-matrix form, a product of generalised
    Householder matrices: S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, y_t = S_t^T q_t."""
    eye = torch.eye(k.shape[-1])
    outputs = []
    for t in range(q.shape[2]):
        k_t, b_t, a_t = k[:, :, t, :, None], beta[:, :, t, None, None], alpha[:, :, t, None, None]
        S = a_t * (eye - b_t * k_t @ k_t.transpose(-1, -2)) @ S + b_t * k_t @ v[:, :, t, None, :]
        outputs.append((S.transpose(-1, -2) @ q[:, :, t, :, None])[..., 0])
    return torch.stack(outputs, 2), S


def selective_scan_reference(u, delta, A, B, C, D, z, x):
    """mamba_ssm's selective_scan_ref (ops/selective_scan_interface.py), written out in its (b d l)
    layout: deltaA = exp(delta A), deltaB_u = delta B u, x = deltaA x + deltaB_u, y = C . x + D u,
    gated by silu(z). B, C: (b n l) when selective, (d n) when not."""
    u, delta, z = (t.transpose(1, 2) for t in (u, delta, z))  # (b d l)
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    if B.dim() == 3:
        deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    else:
        deltaB_u = torch.einsum("bdl,dn,bdl->bdln", delta, B, u)
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]) if C.dim() == 3 else torch.einsum("bdn,dn->bd", x, C))
    y = torch.stack(ys, 2) + u * D[:, None]
    return (y * F.silu(z)).transpose(1, 2), x


def mlstm_reference(q, k, v, igate, fgate, C, n):
    """Beck et al. 2024, eqs. 19-27 without the stabiliser, in float64 (exp(i) stays in range):
    C_t = f_t C_{t-1} + i_t k_t v_t^T, n_t = f_t n_{t-1} + i_t k_t, h_t = C_t^T q_t / max(|n_t . q_t|, 1)."""
    q, k, v, igate, fgate, C, n = (t.double() for t in (q, k, v, igate, fgate, C, n))
    outputs = []
    for t in range(q.shape[2]):
        i, f = torch.exp(igate[:, :, t]), torch.sigmoid(fgate[:, :, t])
        C = f[..., None, None] * C + i[..., None, None] * k[:, :, t, :, None] * v[:, :, t, None, :]
        n = f[..., None] * n + i[..., None] * k[:, :, t]
        bound = torch.maximum((n * q[:, :, t]).sum(-1).abs(), torch.ones(()))
        outputs.append((C.transpose(-1, -2) @ q[:, :, t, :, None])[..., 0] / bound[..., None])
    return torch.stack(outputs, 2).float(), (C, n)


def g(x):
    """Feng et al.'s g: x + 0.5 for x >= 0, sigmoid below."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def mingru_reference(candidate, z, h):
    """Feng et al. 2024, minGRU's sequential mode: h_t = (1 - z_t) h_{t-1} + z_t g(h~_t)."""
    outputs = []
    for t in range(z.shape[1]):
        zt = torch.sigmoid(z[:, t])
        h = (1 - zt) * h + zt * g(candidate[:, t])
        outputs.append(h)
    return torch.stack(outputs, 1), h


def minlstm_reference(candidate, f, i, h):
    """minLSTM's sequential mode: f' = f / (f + i), i' = i / (f + i), h_t = f'_t h_{t-1} + i'_t g(h~_t)."""
    outputs = []
    for t in range(f.shape[1]):
        ft, it = torch.sigmoid(f[:, t]), torch.sigmoid(i[:, t])
        h = ft / (ft + it) * h + it / (ft + it) * g(candidate[:, t])
        outputs.append(h)
    return torch.stack(outputs, 1), h


# ---- the training form, the recurrence and the reference agree ----------------------------------

B, H, DK, DV = 2, 3, 8, 6


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, generator):
    return torch.randn(*shape, generator=generator)


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("start", ["empty", "carried"])
def test_linear_attention_forms(T, start):
    r = gen(T)
    q, k = (linear_attention.feature(randn(B, H, T, DK, generator=r)) for _ in range(2))
    v = randn(B, H, T, DV, generator=r)
    S0, z0 = (
        (torch.zeros(B, H, DK, DV), torch.zeros(B, H, DK))
        if start == "empty"
        else (
            randn(B, H, DK, DV, generator=r).abs(),
            randn(B, H, DK, generator=r).abs() * 5,
        )
    )
    state = None if start == "empty" else (S0, z0)
    y, final = linear_attention.chunked(state, q, k, v)
    y_step, final_step = stepped(linear_attention.step, state, q, k, v, dim=2)
    y_ref, final_ref = linear_attention_reference(q, k, v, S0, z0)
    close(y, y_ref), close(y_step, y_ref)
    close_states(final, final_ref), close_states(final_step, final_ref)


def delta_inputs(T: int, r: torch.Generator):
    q, k = (F.normalize(randn(B, H, T, DK, generator=r), dim=-1) for _ in range(2))
    v = randn(B, H, T, DV, generator=r)
    beta = torch.sigmoid(randn(B, H, T, generator=r))
    return q, k, v, beta


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("start", ["empty", "carried"])
def test_delta_rule_forms(T, gated, start):
    r = gen(T)
    q, k, v, beta = delta_inputs(T, r)
    log_decay = -F.softplus(randn(B, H, T, generator=r) - 1) if gated else None
    S0 = torch.zeros(B, H, DK, DV) if start == "empty" else randn(B, H, DK, DV, generator=r)
    state = None if start == "empty" else S0
    extra = () if log_decay is None else (log_decay,)
    y, final = deltanet.chunked(state, q, k, v, beta, *extra)
    y_step, final_step = stepped(deltanet.step, state, q, k, v, beta, *extra, dim=2)
    alpha = torch.ones_like(beta) if log_decay is None else log_decay.exp()
    y_ref, final_ref = delta_rule_reference(q, k, v, beta, alpha, S0)
    close(y, y_ref), close(y_step, y_ref)
    close_states(final, final_ref), close_states(final_step, final_ref)


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("selective", [True, False])
@pytest.mark.parametrize("start", ["empty", "carried"])
def test_selective_scan_forms(T, selective, start):
    r = gen(T)
    Dch, N = 5, 4
    u, z = randn(B, T, Dch, generator=r), randn(B, T, Dch, generator=r)
    delta = F.softplus(randn(B, T, Dch, generator=r) - 1)
    A = -torch.exp(randn(Dch, N, generator=r) * 0.5)
    D = randn(Dch, generator=r)
    if selective:
        Bm, Cm = randn(B, N, T, generator=r), randn(B, N, T, generator=r)  # the reference's (b n l)
        ours = Bm.transpose(1, 2)[:, :, None], Cm.transpose(1, 2)[:, :, None]  # [B, T, 1, N]
    else:
        Bm, Cm = randn(Dch, N, generator=r), randn(Dch, N, generator=r)
        ours = tuple(p.expand(B, T, Dch, N) for p in (Bm, Cm))
    x0 = torch.zeros(B, Dch, N) if start == "empty" else randn(B, Dch, N, generator=r)
    state = None if start == "empty" else x0
    y, final = mamba.scanned(state, u, delta, *ours, A=A, D=D)
    y_step, final_step = stepped(mamba.step, state, u, delta, *ours, dim=1, A=A, D=D)
    y_ref, final_ref = selective_scan_reference(u, delta, A, Bm, Cm, D, z, x0)
    close(y * F.silu(z), y_ref), close(y_step * F.silu(z), y_ref)
    close_states(final, final_ref), close_states(final_step, final_ref)


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("start", ["empty", "carried"])
def test_mlstm_forms(T, start):
    r = gen(T)
    q, k, v = (randn(B, H, T, d, generator=r) for d in (DK, DK, DV))
    k = k / math.sqrt(DK)
    igate = randn(B, H, T, generator=r) * 2  # exp(i) from about e^-6 to e^6: the stabiliser at work
    fgate = randn(B, H, T, generator=r) * 2 + 2
    if start == "empty":
        state, C0, n0 = None, torch.zeros(B, H, DK, DV), torch.zeros(B, H, DK)
    else:  # a stabilised state (C~, n~, m) and the true one it stands for, C = e^m C~
        C_s, n_s, m = randn(B, H, DK, DV, generator=r), randn(B, H, DK, generator=r), randn(B, H, generator=r)
        state, C0, n0 = (C_s, n_s, m), C_s * m.exp()[..., None, None], n_s * m.exp()[..., None]
    y, final = mlstm.chunked(state, q, k, v, igate, fgate)
    y_step, final_step = stepped(mlstm.step, state, q, k, v, igate, fgate, dim=2)
    y_ref, (C_ref, n_ref) = mlstm_reference(q, k, v, igate, fgate, C0, n0)
    close(y, y_ref), close(y_step, y_ref)
    close_states(final, final_step)  # the same stabiliser m, not merely an equivalent state
    C, n, m = final
    scale = torch.exp(m).double()  # the true state, relative to its size
    for ours, theirs in ((C * scale[..., None, None], C_ref), (n * scale[..., None], n_ref)):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * float(theirs.abs().max()))


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("start", ["empty", "carried"])
def test_min_rnn_forms(T, cell, start):
    r = gen(T)
    Hd = 5
    gates = 1 if cell == "mingru" else 2
    pre = [randn(B, T, Hd, generator=r) for _ in range(1 + gates)]
    h0 = torch.zeros(B, Hd) if start == "empty" else randn(B, Hd, generator=r).abs()
    state = None if start == "empty" else h0
    coefficients = minrnn.gru_coefficients if cell == "mingru" else minrnn.lstm_coefficients
    log_a, log_b = coefficients(*pre)
    y, final = minrnn.scanned(state, log_a, log_b)
    y_step, final_step = stepped(minrnn.step, state, log_a, log_b, dim=1)
    reference = mingru_reference if cell == "mingru" else minlstm_reference
    y_ref, final_ref = reference(*pre, h0)
    close(y, y_ref), close(y_step, y_ref)
    close_states(final, final_ref), close_states(final_step, final_ref)


def test_the_linear_scan_holds_its_digits_over_a_long_sequence():
    """Strong forgetting (z near 1) over 2000 positions, in float32: the scan in linear space keeps
    h's digits (a <= 1, so no error grows), where the paper's log-space scan over the whole
    sequence, exp(log a* + logcumsumexp(log b - log a*)), loses them as |log a*| grows."""
    r = gen(0)
    pre = [randn(1, 2000, 4, generator=r) + shift for shift in (0.0, 3.0)]  # z = sigmoid(3 +- 1)
    y_ref, _ = mingru_reference(*(p.double() for p in pre), torch.zeros(1, 4, dtype=torch.float64))
    log_a, log_b = minrnn.gru_coefficients(*pre)
    y, _ = minrnn.scanned(None, log_a, log_b)
    close(y.double(), y_ref)
    decay = log_a.cumsum(1)
    whole = torch.exp(decay + torch.logcumsumexp(log_b - decay, 1))
    assert float(((whole.double() - y_ref) / y_ref).abs().max()) > 1e-4


# ---- the scans' written-out backward passes are the gradients of their recurrences ---------------


def double(*shapes, generator):
    """Standard normal float64 leaves for gradcheck, of these shapes."""
    return [torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_() for shape in shapes]


@pytest.mark.parametrize("start", ["empty", "carried"])
def test_the_linear_scans_backward_is_its_gradient(start):
    r = gen(1)
    a, b, h0 = double((2, 6, 3, 2), (2, 6, 3, 2), (2, 3, 2), generator=r)
    a = torch.sigmoid(a.detach()).requires_grad_()
    inputs = (a, b, None if start == "empty" else h0)
    assert torch.autograd.gradcheck(linear_scan, inputs)


@pytest.mark.parametrize("selective", [True, False])
@pytest.mark.parametrize("start", ["empty", "carried"])
def test_the_selective_scans_backward_is_its_gradient(selective, start):
    r = gen(2)
    Dch, N, T = 3, 4, 5
    shared = 1 if selective else Dch
    u, raw_delta, A, Bm, Cm, h0 = double(
        (2, T, Dch), (2, T, Dch), (Dch, N), (2, T, shared, N), (2, T, shared, N), (2, Dch, N), generator=r
    )
    delta = F.softplus(raw_delta.detach()).requires_grad_()
    A = (-A.detach().exp()).requires_grad_()
    inputs = (u, delta, A, Bm, Cm, None if start == "empty" else h0)
    assert torch.autograd.gradcheck(mamba.SelectiveScan.apply, inputs)


# ---- the model trained through its recurrence is the same model ----------------------------------


def padded_batch(lengths: list[int], seed: int = 0) -> torch.Tensor:
    """Rows of real tokens of these lengths, right-padded with <PAD> to the longest."""
    tokens = random_tokens(len(lengths), max(lengths), seed)
    for row, length in enumerate(lengths):
        tokens[row, length:] = PAD
    return tokens


@pytest.mark.parametrize("name", FAMILIES)
def test_the_chunked_model_equals_the_model_trained_through_its_recurrence(name):
    """Same weights, a right-padded batch: the chunked form's logits at every row's real positions
    are the recurrence's, read one token at a time, row by row."""
    model = small_model(name)
    recurrence = MODELS[name].recurrence(model_config(**{**SMALL, "name": name}), V).eval()
    recurrence.load_state_dict(model.state_dict())
    lengths = [70, 1, 33, 6]
    tokens = padded_batch(lengths)
    with torch.no_grad():
        batched, _ = model(tokens)
        for row, length in enumerate(lengths):
            alone, _ = recurrence(tokens[row : row + 1, :length])
            close(batched[row : row + 1, :length], alone)


# ---- initialisation, as the papers do it ------------------------------------------------------


def mixers(model):
    return [block.mixer for block in model.blocks]


@torch.no_grad()
def test_mamba_starts_as_its_reference_does():
    model = small_model("mamba", embedding_dim=64, state_size=16)
    N = 16
    for mixer in mixers(model):
        A = -torch.exp(mixer.A_log)
        close(A, -torch.arange(1, N + 1, dtype=torch.float32).expand(128, N))  # S4D-real, every channel
        close(mixer.D, torch.ones(128))
        dt = F.softplus(mixer.dt_proj.bias)
        assert float(dt.min()) >= 1e-3 * (1 - 1e-5) and float(dt.max()) <= 1e-1 * (1 + 1e-5)
        bound = mixer.rank**-0.5
        assert float(mixer.dt_proj.weight.abs().max()) <= bound
        assert float(mixer.dt_proj.weight.std()) > 0.5 * bound / math.sqrt(3)  # uniform, not GPT-2's 0.02
    # dt log-uniform over [1e-3, 1e-1]: its log spread evenly, mean at the middle (over 1024 channels)
    torch.manual_seed(0)
    log_dt = F.softplus(small_model("mamba", embedding_dim=512).blocks[0].mixer.dt_proj.bias).log()
    assert abs(float(log_dt.mean()) - math.log(1e-2)) < 0.15
    assert float(log_dt.min()) < math.log(1.2e-3) and float(log_dt.max()) > math.log(0.08)


@torch.no_grad()
def test_mamba_not_selective_has_constant_delta_b_c():
    """selective: false: Delta, B and C are parameters of their own (per channel), no projection
    of the input makes them; Delta starts as the selective one's bias does."""
    model = small_model("mamba", selective=False)
    names = {n.split("mixer.", 1)[1] for n, _ in model.named_parameters() if ".mixer." in n}
    assert {"dt_bias", "B", "C", "A_log", "D"} <= names and not {"x_proj.weight", "dt_proj.weight"} & names
    for mixer in mixers(model):
        dt = F.softplus(mixer.dt_bias)
        assert float(dt.min()) >= 1e-3 * (1 - 1e-5) and float(dt.max()) <= 1e-1 * (1 + 1e-5)
        close(mixer.B, torch.ones_like(mixer.B))
    tokens = random_tokens(2, 40)  # and it is the same function read either way
    full, _ = model(tokens)
    head, state = model(tokens[:, :17])
    rest, _ = model(tokens[:, 17:], state)
    close(torch.cat([head, rest], 1), full)


@torch.no_grad()
def test_gated_deltanet_starts_its_decay_as_flash_linear_attention_does():
    model = small_model("gated_deltanet", heads=4, embedding_dim=16)
    for mixer in mixers(model):
        A = torch.exp(mixer.A_log)
        assert float(A.min()) > 0 and float(A.max()) < 16
        dt = F.softplus(mixer.dt_bias)
        assert float(dt.min()) >= 1e-3 * (1 - 1e-5) and float(dt.max()) <= 1e-1 * (1 + 1e-5)


@torch.no_grad()
def test_mlstm_starts_its_gates_as_xlstm_does():
    model = small_model("mlstm", heads=4, embedding_dim=16)
    for mixer in mixers(model):
        close(mixer.fgate.bias, torch.tensor([3.0, 4.0, 5.0, 6.0]))
        assert float(mixer.fgate.weight.abs().max()) == 0 == float(mixer.igate.weight.abs().max())
        assert float(mixer.igate.bias.abs().max()) < 0.5 and float(mixer.igate.bias.abs().min()) > 0


def test_parameters_kept_out_of_weight_decay():
    """Mamba's A_log (a matrix), D and Delta's bias, gated DeltaNet's A_log and dt_bias, every norm
    gain and bias stay out of weight decay; the projections and the embedding are decayed."""
    tc = SimpleNamespace(weight_decay=0.1, lr=1e-3)
    for name, kept, decayed in [
        (
            "mamba",
            ["A_log", "D", "dt_proj.bias", "conv.conv.bias", "norm1.weight"],
            ["in_proj.weight", "x_proj.weight"],
        ),
        ("gated_deltanet", ["A_log", "dt_bias", "norm.weight"], ["qkv.weight", "decay.weight"]),
    ]:
        model = small_model(name)
        decay, no_decay = build_optimizer(model, tc).param_groups
        assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
        by_id = {id(p): n for n, p in model.named_parameters()}
        kept_names = {by_id[id(p)] for p in no_decay["params"]}
        decayed_names = {by_id[id(p)] for p in decay["params"]}
        assert all(any(n.endswith(k) for n in kept_names) for k in kept), kept_names
        assert all(any(n.endswith(k) for n in decayed_names) for k in decayed), decayed_names
        assert "tok.weight" in decayed_names
        assert len(kept_names) + len(decayed_names) == len(list(model.parameters()))


# ---- keys and state ---------------------------------------------------------------------------

# ModelSection's defaults (and the report's), on echo's vocabulary of 9 tokens
DEFAULTS = {"embedding_dim": 64, "hidden_size": 64, "layers": 2, "heads": 4}


def default_model(name: str, **keys):
    return small_model(name, **{**DEFAULTS, "ffn_dim": None, **keys})


@pytest.mark.parametrize(
    "name, per_layer",
    [
        # heads x (dk x dv) memory + normaliser dk, and the short convolution's 3 inputs of q, k, v
        ("linear_attention", 4 * (16 * 16 + 16) + 3 * 3 * 64),
        ("deltanet", 4 * 16 * 16 + 3 * 3 * 64),
        ("gated_deltanet", 4 * 16 * 16 + 3 * 3 * 64),
        ("mlstm", 4 * (16 * 16 + 16 + 1) + 3 * 3 * 64),  # C, n and the stabiliser m per head
        ("mamba", 128 * 16 + 128 * 3),  # expand x width channels of N = 16, and conv_size 4's last 3 inputs
        ("mingru", 64),  # hidden_size, no convolution
        ("minlstm", 64),
    ],
)
def test_state_bytes_at_the_defaults(name, per_layer):
    model = default_model(name)
    assert model.state_bytes() == 2 * per_layer * 4
    with torch.no_grad():
        _, state = model(random_tokens(1, 9))
    assert state_size(state) == model.state_bytes()


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("keys", [{"short_conv": 0}, {"short_conv": 1}, {"short_conv": 3}, {"ffn": False}])
def test_keys_change_the_network_and_keep_its_state_exact(name, keys):
    """short_conv (mamba: conv_size) and ffn: decoding in pieces equals the full pass, and the
    convolution's kernel - 1 inputs are in the state."""
    if name == "mamba" and "short_conv" in keys:
        keys = {"conv_size": keys["short_conv"] or 1}
    model = small_model(name, **keys)
    tokens = random_tokens(2, 40)
    with torch.no_grad():
        full, _ = model(tokens)
        head, state = model(tokens[:, :13])
        rest, state = model(tokens[:, 13:], state)
    close(torch.cat([head, rest], 1), full)
    assert state_size(state) == 2 * model.state_bytes()
    if keys == {"ffn": False}:
        assert all(block.ffn is None for block in model.blocks)
        assert count_params(model) < count_params(small_model(name))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kernel", [1, 4])
def test_the_short_convolution_is_torchs_causal_depthwise_conv(bias, kernel):
    """Our sum of shifted slices equals nn.Conv1d (groups = channels) over the inputs left-padded
    by the carried ones, forward and in every gradient; its state is the last kernel - 1 inputs."""
    r = gen(kernel)
    conv = ShortConv(6, kernel, bias=bias)
    x, past = randn(2, 9, 6, generator=r).requires_grad_(), randn(2, kernel - 1, 6, generator=r)
    y, state = conv(x, past)
    y_ref = conv.conv(torch.cat([past, x], 1).transpose(1, 2)).transpose(1, 2)
    close(y, y_ref), close(state, torch.cat([past, x], 1)[:, 9:])
    grad = randn(*y.shape, generator=r)
    ours = torch.autograd.grad(y, [x, *conv.parameters()], grad)
    theirs = torch.autograd.grad(y_ref, [x, *conv.parameters()], grad)
    for a, b in zip(ours, theirs):
        close(a, b)


def test_short_conv_defaults():
    for name in ["linear_attention", "deltanet", "gated_deltanet", "mlstm"]:
        assert model_config(name=name).short_conv == 4
    for name in ["mingru", "minlstm"]:
        assert model_config(name=name).short_conv == 0
    cfg = model_config(name="mamba")
    assert (cfg.state_size, cfg.expand, cfg.conv_size, cfg.selective, cfg.ffn) == (16, 2, 4, True, True)


def test_mingru_width_is_hidden_size():
    small, large = default_model("mingru", hidden_size=32), default_model("mingru", hidden_size=128)
    assert large.state_bytes() == 4 * small.state_bytes() == 2 * 128 * 4


# ---- through the CLI: train, generate, inspect --------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, runner):
    """Each family trained for 2 steps through the CLI on a short echo."""
    root = tmp_path_factory.mktemp("modern")
    runs = {}
    for name in FAMILIES:
        config = {
            "name": name,
            "task": {"name": "echo", "message_length": 3, "max_gap": 6, "train_size": 64, "val_size": 16},
            "model": {"name": name, "embedding_dim": 16, "hidden_size": 16, "heads": 2, "layers": 2},
            "train": {"steps": 2, "batch_size": 8, "eval_every": 2},
            "sample": {"num_samples": 2, "max_new_tokens": 5},
        }
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        result = runner.invoke(app, ["train", "--config", str(path), "--runs-dir", str(root / name)])
        assert result.exit_code == 0, result.output
        runs[name] = next((root / name).iterdir())
    return runs


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_trains_generates_and_is_drawn(runner, trained, tmp_path, name):
    run = trained[name]
    result = runner.invoke(app, ["generate", str(run), "--num-samples", "2", "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["inspect", str(run), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gradients.png"]
    assert (tmp_path / "gradients.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("name", FAMILIES)
def test_gradients_reach_back_through_the_recurrence(name):
    """A prompt position's output has no loss of its own: its state's gradient comes through the
    recurrence from the answer, at every layer."""
    model = small_model(name)
    x = random_tokens(1, 16)
    logits, read = model.gradient_states(x, torch.tensor([8]))
    logits[0, 7:].logsumexp(-1).sum().backward()
    lines = read()
    assert list(lines) == ["layer 1 state", "layer 2 state"]
    for norms in lines.values():
        assert (norms[:7] > 0).all() and norms.isfinite().all()


def test_the_default_gradient_states_read_the_whole_state_through_decoding():
    """Defaults.gradient_states, for a model that gives none of its own: one line, the norm of every
    layer's state together, position by position."""
    model = small_model("deltanet")
    x, start = random_tokens(1, 12), torch.tensor([6])
    norms = {}
    for reader in (Defaults.gradient_states, type(model).gradient_states):
        model.zero_grad()
        logits, read = reader(model, x, start)
        logits[0, 5:].logsumexp(-1).sum().backward()
        norms[reader] = read()
    (whole,) = norms[Defaults.gradient_states].values()
    layers = torch.stack(list(norms[type(model).gradient_states].values()))
    close(whole, layers.pow(2).sum(0).sqrt())
