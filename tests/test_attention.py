"""The attention lab: the variants agree where they should, stay causal, decode incrementally,
rotate and encode positions as RoPE and sinusoids promise, drop out as dropout should, and
train through the config and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers import V, lively, model_config
from pydantic import ValidationError

from barkbench.buckets import power_of_two_bucket
from barkbench.cli import app
from barkbench.config import RunConfig, validate
from barkbench.errors import BarkError
from barkbench.models import build_model
from barkbench.models.attention import ATTENTION, HeadStack, MultiHeadAttention, SimpleAttention, rotate, rotations
from barkbench.models.gpt.network import BarkGPT, sinusoids
from barkbench.models.recurrent.network import BarkRNN
from barkbench.rundir import start_run
from barkbench.tasks import make_splits
from barkbench.train import train
from barkbench.vocab import PAD, VOCAB

VARIANTS = ["simple", "single", "wrapper", "mha"]
POSITIONALS = ["learned", "sinusoidal", "rope", "none"]
RNNS = ["rnn", "lstm", "gru"]
GPT = {"name": "gpt", "embedding_dim": 8, "layers": 2, "heads": 2, "context_length": 24}
RNN = {"embedding_dim": 6, "hidden_size": 8, "layers": 1, "heads": 2, "context_length": 24}


def model_cfg(**model):
    return model_config({"name": "barks", "max_barks": 4}, **model)


def gpt(attention: str, positional: str, **extra) -> BarkGPT:
    torch.manual_seed(0)
    return lively(build_model(model_cfg(**{**GPT, "attention": attention, "positional": positional, **extra}), V))


def rnn(core: str, attention: str) -> BarkRNN:
    torch.manual_seed(0)
    return lively(build_model(model_cfg(**{**RNN, "name": core, "attention": attention}), V))


def tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, V, (batch, length), generator=torch.Generator().manual_seed(seed))


def inputs(batch: int, length: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, length, width, generator=torch.Generator().manual_seed(seed))


def close(a, b, tol: float = 1e-5):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def layer(kind: str, width: int = 16, heads: int = 4, dropout: float = 0.0, rope: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    return ATTENTION[kind](width, heads, dropout, rope).eval()


def copy_mha_into_stack(mha: MultiHeadAttention, stack: HeadStack) -> None:
    """Give the stack of single heads exactly the per-head weights of the batched layer:
    head h's query is rows [h*S, (h+1)*S) of the query block of mha.qkv, and so on."""
    width, heads = mha.qkv.in_features, len(stack.query)
    size = width // heads
    with torch.no_grad():
        for block, linears in enumerate((stack.query, stack.key, stack.value)):
            for h in range(heads):
                rows = slice(block * width + h * size, block * width + (h + 1) * size)
                linears[h].weight.copy_(mha.qkv.weight[rows])
                linears[h].bias.copy_(mha.qkv.bias[rows])
        stack.proj.load_state_dict(mha.proj.state_dict())


def run_split(module, x, cut: int):
    """The layer or model over x[:, :cut] and then x[:, cut:] with the state it returned."""
    first, state = module(x[:, :cut])
    second, state = module(x[:, cut:], state)
    return torch.cat([first, second], 1), state


# ---- 1. fused mha == from-scratch mha ------------------------------------------------------


@pytest.mark.parametrize("rope", [False, True])
def test_fused_and_from_scratch_mha_agree(rope):
    mha = layer("mha", rope=rope)
    x = inputs(3, 9, 16)
    outputs = {}
    with torch.no_grad():
        for fused in (True, False):
            mha.fused = fused
            full, (k, v) = mha(x)
            outputs[fused] = {
                "full": full,
                "cache": torch.cat([k, v]),
                "then one token": run_split(mha, x, 8)[0],  # prefix, then a single query
                "then a chunk": run_split(mha, x, 4)[0],  # prefix, then several queries at the end
            }
    for key in outputs[True]:
        close(outputs[True][key], outputs[False][key])
    # and continuing from a cache is the full pass, on both paths
    for fused in (True, False):
        close(outputs[fused]["then one token"], outputs[fused]["full"])
        close(outputs[fused]["then a chunk"], outputs[fused]["full"])


def test_mha_is_fused_by_default():
    assert layer("mha").fused is True


# ---- 2. wrapper == mha with the same per-head weights; single == one-head mha -------------


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind, heads", [("wrapper", 4), ("wrapper", 2), ("single", 1)])
def test_head_stack_equals_mha_with_the_same_weights(kind, heads, fused, rope):
    mha = layer("mha", heads=heads, rope=rope, seed=1)
    mha.fused = fused
    stack = layer(kind, heads=heads, rope=rope, seed=2)
    assert len(stack.query) == heads
    x = inputs(2, 7, 16)
    with torch.no_grad():
        assert not torch.allclose(stack(x)[0], mha(x)[0], atol=1e-3)  # different weights: different layers
        copy_mha_into_stack(mha, stack)
        (y_stack, cache_stack), (y_mha, cache_mha) = stack(x), mha(x)
        close(y_stack, y_mha)
        close(torch.cat(cache_stack), torch.cat(cache_mha))
        close(run_split(stack, x, 5)[0], run_split(mha, x, 5)[0])


def test_wrapper_gpt_equals_mha_gpt_with_the_same_weights():
    mha_model, wrapper_model = gpt("mha", "learned"), gpt("wrapper", "learned")
    others = {k: v for k, v in mha_model.state_dict().items() if ".attn." not in k}
    wrapper_model.load_state_dict(others, strict=False)
    for a, b in zip(mha_model.blocks, wrapper_model.blocks):
        copy_mha_into_stack(a.attn, b.attn)
    x = tokens(2, 12)
    with torch.no_grad():
        close(wrapper_model(x)[0], mha_model(x)[0])


# ---- 3. causality --------------------------------------------------------------------------


def change_after(x: torch.Tensor, t: int) -> torch.Tensor:
    changed = x.clone()
    changed[:, t + 1] = x[:, t + 1] % (V - 1) + 1  # another real token
    return changed


@pytest.mark.parametrize("positional", POSITIONALS)
@pytest.mark.parametrize("attention", VARIANTS + ["none"])
def test_gpt_is_causal(attention, positional):
    model = gpt(attention, positional)
    x = tokens(2, 12)
    for t in (2, 7):
        with torch.no_grad():
            before, after = model(x)[0], model(change_after(x, t))[0]
        close(after[:, : t + 1], before[:, : t + 1], tol=1e-6)  # the past never sees the future
        assert (after[:, t + 1] - before[:, t + 1]).abs().max() > 1e-3  # the changed token itself
        later = (after[:, t + 2 :] - before[:, t + 2 :]).abs().amax(dim=(0, 2))
        if attention == "none":
            # no attention: no position sees any other, so only the changed position moves
            close(after[:, t + 2 :], before[:, t + 2 :], tol=1e-6)
        else:
            assert (later > 1e-3).all(), f"positions after {t + 1} did not see the change: {later}"


@pytest.mark.parametrize("attention", VARIANTS + ["none"])
@pytest.mark.parametrize("core", RNNS)
def test_rnn_with_attention_is_causal(core, attention):
    model = rnn(core, attention)
    assert (model.attn is None) == (attention == "none")
    x = tokens(2, 12)
    for t in (2, 7):
        with torch.no_grad():
            before, after = model(x)[0], model(change_after(x, t))[0]
        close(after[:, : t + 1], before[:, : t + 1], tol=1e-6)
        later = (after[:, t + 1 :] - before[:, t + 1 :]).abs().amax(dim=(0, 2))
        assert (later > 1e-4).all()


# ---- 4. incremental decoding == the full pass ----------------------------------------------


def decode_pieces(model, x, cuts):
    """Logits over x computed piece by piece, carrying the model's state between pieces."""
    pieces, state, start = [], None, 0
    for end in [*cuts, x.shape[1]]:
        logits, state = model(x[:, start:end], state)
        pieces.append(logits)
        start = end
    return torch.cat(pieces, 1)


SPLITS = [[5], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [3, 4, 9]]  # a chunk; token by token; mixed


def assert_pieces_equal_full_pass(model):
    x = tokens(2, 12)
    with torch.no_grad():
        full = model(x)[0]
        for cuts in SPLITS:
            close(decode_pieces(model, x, cuts), full)


@pytest.mark.parametrize("positional", POSITIONALS)
@pytest.mark.parametrize("attention", VARIANTS + ["none"])
def test_gpt_incremental_decoding_equals_full_pass(attention, positional):
    assert_pieces_equal_full_pass(gpt(attention, positional))


@pytest.mark.parametrize("attention", VARIANTS)
@pytest.mark.parametrize("core", RNNS)
def test_rnn_with_attention_incremental_decoding_equals_full_pass(core, attention):
    assert_pieces_equal_full_pass(rnn(core, attention))


@pytest.mark.parametrize("attention", VARIANTS + ["none"])
@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_gpt_teacher_forcing_is_the_full_pass_at_the_answer(attention, positional):
    # Teacher forcing runs the last block's feed-forward and the head on the positions from
    # answer_start - 1 on alone. There its logits, and every gradient of a loss on them, are the
    # full pass's (forward); before them they are zeros. Rows of several lengths and answer
    # starts, right-padded, as a training batch is.
    model = gpt(attention, positional, layers=3)
    x = tokens(4, 14, seed=3)
    x[1, 9:], x[3, 12:] = PAD, PAD
    start = torch.tensor([5, 3, 11, 8])
    answer = torch.arange(14)[None, :] >= start[:, None] - 1
    answer &= x != PAD
    full, _ = model(x)
    logits = model.teacher_forcing(x, start)
    close(logits[answer], full[answer])
    assert not logits[torch.arange(14)[None, :] < start[:, None] - 1].any()
    grads = [torch.autograd.grad(out[answer].square().sum(), list(model.parameters())) for out in (full, logits)]
    for ours, reference in zip(*grads):
        close(ours, reference)


# ---- 5. positions: RoPE and sinusoids ------------------------------------------------------


def test_rope_scores_depend_only_on_the_relative_offset():
    # Property: rotate(q, a)[i] . rotate(k, b)[j] depends only on (i + a) - (j + b), so moving
    # the whole sequence (queries and keys alike) to another start leaves every score alone,
    # while moving the queries against the keys changes them.
    q, k = inputs(2, 6, 16, seed=1).view(2, 1, 6, 16), inputs(2, 6, 16, seed=2).view(2, 1, 6, 16)

    def scores(a, b):
        return rotate(q, a) @ rotate(k, b).transpose(-2, -1)

    close(rotate(q, 0)[:, :, :1], q[:, :, :1])  # position 0 is no rotation
    for start in (1, 5, 17):
        close(scores(start, start), scores(0, 0))
    assert not torch.allclose(scores(5, 0), scores(0, 0), atol=1e-3)
    assert not torch.allclose(scores(0, 3), scores(0, 0), atol=1e-3)
    # one fixed query and key: the score is a function of p - r alone
    one_q, one_k = q[:, :, :1], k[:, :, :1]

    def score(p, r):
        return (rotate(one_q, p) * rotate(one_k, r)).sum(-1)

    for offset in (0, 2, -3):
        close(score(10 + offset, 10), score(20 + offset, 20))
    assert not torch.allclose(score(3, 0), score(2, 0), atol=1e-3)
    # and it is a rotation: lengths are kept
    close(rotate(q, 7).norm(dim=-1), q.norm(dim=-1))


def test_rope_is_the_paper_rotation_to_the_last_float():
    # Reference (RoFormer, Su et al. 2021, eq. 34 with GPT-NeoX's split halves): each pair
    # (x_i, x_{i+d/2}) at position m turns by the angle m * 10000^(-2i/d). Written out here as four
    # products; rotate's two give the same floats, at any start, in a cache's long table or not.
    x = torch.randn(3, 2, 9, 16, generator=torch.Generator().manual_seed(0))
    for start in (0, 1, 7, 60):
        half = 8
        theta = 10000 ** (-torch.arange(half, dtype=torch.float32) / half)
        angle = torch.arange(start, start + 9, dtype=torch.float32)[:, None] * theta
        a, b = x[..., :half], x[..., half:]
        cos, sin = angle.cos(), angle.sin()
        expected = torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
        assert torch.equal(rotate(x, start), expected)
        assert torch.equal(rotate(x[:, :, 3:4], start + 3), expected[:, :, 3:4])  # one token, as when generating


def test_rope_tables_made_in_inference_mode_still_train():
    # rotate keeps its tables; the first made under torch.inference_mode must not be inference
    # tensors, or every later training pass at that length would refuse to save them
    rotations.cache_clear()
    with torch.inference_mode():
        rotate(torch.randn(1, 1, 5, 8), 0)
    x = torch.randn(1, 1, 5, 8, requires_grad=True)
    rotate(x, 0).sum().backward()
    assert x.grad is not None


def test_rope_gpt_attends_the_same_way_at_any_start():
    # Property: in a rope GPT, the first layer's attention among a sequence's own tokens does
    # not depend on where the sequence starts. Shifting it by a 5-token prefix in the cache,
    # the weights over its own keys (renormalised: the prefix takes part of each row) are the
    # weights it gets at start 0. With learned positions they are not.
    seq, prefix = tokens(2, 6, seed=3), tokens(2, 5, seed=4)
    weights = {}
    for positional in ("rope", "learned"):
        model = gpt("mha", positional)
        attn = model.blocks[0].attn
        attn.keep_weights = True
        with torch.no_grad():
            model(seq)
            at_zero = attn.weights
            model(seq, model(prefix)[1])
            shifted = attn.weights
        assert at_zero.shape == (2, 2, 6, 6) and shifted.shape == (2, 2, 6, 11)
        own = shifted[..., 5:]
        weights[positional] = (own / own.sum(-1, keepdim=True), at_zero)
    close(*weights["rope"])
    assert not torch.allclose(*weights["learned"], atol=1e-3)


def test_rope_gpt_tells_positions_apart():
    # A sequence of one repeated token: without any position signal every query sees the same
    # keys, so each row of the weights is uniform; rope rotates them apart by their offsets.
    same = torch.full((1, 8), VOCAB.index("woof"))
    rows = {}
    for positional in ("rope", "none"):
        model = gpt("mha", positional)
        assert all(block.attn.rope == (positional == "rope") for block in model.blocks)
        model.blocks[0].attn.keep_weights = True
        with torch.no_grad():
            model(same)
        rows[positional] = model.blocks[0].attn.weights[0, :, -1]  # the last query, over 8 keys
    close(rows["none"], torch.full((2, 8), 1 / 8))
    assert (rows["rope"].amax(-1) - rows["rope"].amin(-1) > 1e-2).all()
    assert not rnn("gru", "mha").attn.rope  # an RNN's order is in its recurrence


def test_sinusoids_dot_product_depends_only_on_the_offset():
    # Property: PE(p) . PE(p + k) = sum_i cos(k w_i), the same for every p.
    table = sinusoids(64, 16)
    for k in (0, 1, 5, 20):
        dots = (table[: 64 - k] * table[k:]).sum(-1)
        close(dots, dots[:1].expand_as(dots), tol=1e-4)
    assert not torch.allclose((table[0] * table[1]).sum(), (table[0] * table[5]).sum(), atol=1e-3)
    close(table.norm(dim=-1), torch.full((64,), 8**0.5))  # 8 (sin, cos) pairs of length 1


def test_sinusoids_shift_is_a_fixed_rotation_per_frequency():
    # Property: PE(p + k) = R_k PE(p) for every p, R_k rotating each (sin, cos) feature pair by
    # the angle k w_i; R_k is read off PE(k) itself, since PE(0) is (0, 1) in every pair.
    table = sinusoids(64, 16)
    close(table[0], torch.tensor([0.0, 1.0] * 8))
    for k in (1, 3, 11):
        s, c = table[k, 0::2], table[k, 1::2]  # sin(k w), cos(k w)
        sin_p, cos_p = table[: 64 - k, 0::2], table[: 64 - k, 1::2]
        shifted = torch.stack([sin_p * c + cos_p * s, cos_p * c - sin_p * s], -1).flatten(1)
        close(shifted, table[k:], tol=1e-4)


def test_sinusoidal_gpt_uses_the_table():
    model = gpt("mha", "sinusoidal")
    close(model.pos_table, sinusoids(GPT["context_length"], GPT["embedding_dim"]))
    assert not any("pos" in name for name, _ in model.named_parameters())  # fixed, not learned


# ---- 6. dropout ----------------------------------------------------------------------------

P = 0.5


def assert_dropped(dropped: torch.Tensor, clean: torch.Tensor, p: float = P):
    """Every weight is either dropped (0) or the clean weight scaled by 1 / (1 - p), and both happen."""
    kept = torch.isclose(dropped, clean / (1 - p), atol=1e-6, rtol=1e-5)
    zero = dropped == 0
    assert (kept | zero).all()
    live = clean > 1e-4  # where a clean weight is worth dropping
    assert (zero & live).any() and (kept & live & ~zero).any()


def test_dropout_on_the_weights_that_mix_the_values():
    # SimpleAttention on the rows of an identity matrix: the values are the identity, so the
    # output is exactly the (dropped-out) weight matrix that mixed them.
    x = torch.eye(8).expand(16, 8, 8)
    attn = SimpleAttention(8, 1, P, rope=False)
    attn.keep_weights = True
    with torch.no_grad():
        clean = attn.eval()(x)[0]
        close(clean, attn.weights[:, 0])
        torch.manual_seed(0)
        dropped = attn.train()(x)[0]
    assert_dropped(dropped, clean)


@pytest.mark.parametrize("kind", VARIANTS)
def test_dropout_kept_weights_are_zero_or_scaled(kind):
    attn = layer(kind, width=8, heads=2, dropout=P)
    # The weights a layer keeps are the ones that mixed its values: in training, with some
    # dropped and the rest scaled by 1 / (1 - p); at evaluation, the plain softmax.
    attn.keep_weights = True  # on mha this takes the from-scratch path
    x = inputs(8, 10, 8)
    with torch.no_grad():
        attn.eval()(x)
        clean = attn.weights
        torch.manual_seed(0)
        attn.train()(x)
        dropped = attn.weights
    assert dropped.shape == clean.shape
    assert_dropped(dropped, clean)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", VARIANTS)
def test_dropout_is_off_at_evaluation(kind, fused):
    attn = layer(kind, width=8, heads=2, dropout=P)
    no_dropout = layer(kind, width=8, heads=2, dropout=0.0)
    no_dropout.load_state_dict(attn.state_dict())
    for module in (attn, no_dropout):
        if kind == "mha":
            module.fused = fused
    x = inputs(4, 10, 8)
    with torch.no_grad():
        torch.manual_seed(1)
        first = attn(x)[0]
        torch.manual_seed(2)
        second = attn(x)[0]
        assert torch.equal(first, second)
        close(first, no_dropout(x)[0], tol=1e-6)
        torch.manual_seed(3)
        assert not torch.allclose(attn.train()(x)[0], first, atol=1e-4)  # and it is on in training


def test_gpt_dropout_is_off_at_evaluation():
    model = gpt("mha", "learned", dropout=P)
    no_dropout = gpt("mha", "learned")
    no_dropout.load_state_dict(model.state_dict())
    x = tokens(2, 12)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(x)[0]
        torch.manual_seed(2)
        assert torch.equal(model(x)[0], first)
        close(first, no_dropout(x)[0], tol=1e-6)
        assert not torch.allclose(model.train()(x)[0], first, atol=1e-4)


# ---- 7. keep_weights -----------------------------------------------------------------------


@pytest.mark.parametrize("kind, heads", [("simple", 1), ("single", 1), ("wrapper", 4), ("mha", 4)])
def test_kept_weights_are_causal_distributions(kind, heads):
    attn = layer(kind, heads=4)
    assert attn.weights is None
    x = inputs(3, 7, 16)
    with torch.no_grad():
        y_plain = attn(x)[0]
        assert attn.weights is None  # nothing kept unless asked
        attn.keep_weights = True
        y_kept = attn(x)[0]
    close(y_kept, y_plain)  # keeping weights (mha: the from-scratch path) changes nothing
    w = attn.weights
    assert w.shape == (3, heads, 7, 7)
    assert not w.requires_grad
    close(w.sum(-1), torch.ones(3, heads, 7))
    assert (w >= 0).all()
    assert (w.triu(1) == 0).all()
    past = torch.ones(7, 7, dtype=torch.bool).tril()
    assert (w[..., past] > 0).all()  # and every position so far gets some attention (softmax)
    # after a cache: the last queries against every key so far, still causal
    with torch.no_grad():
        _, cache = attn(x[:, :4])
        attn(x[:, 4:], cache)
    w = attn.weights
    assert w.shape == (3, heads, 3, 7)
    close(w.sum(-1), torch.ones(3, heads, 3))
    past = torch.ones(3, 7, dtype=torch.bool).tril(4)
    assert (w[..., ~past] == 0).all() and (w[..., past] > 0).all()


# ---- 8. config -----------------------------------------------------------------------------


def test_attention_defaults():
    assert RunConfig.model_validate({}).model.attention == "mha"
    assert model_cfg(name="gpt").attention == "mha"
    assert model_cfg(name="gpt").positional == "learned"
    for core in RNNS:
        cfg = model_cfg(name=core)
        assert cfg.attention == "none"
        assert build_model(cfg, V).attn is None


def problems(model: dict, **extra) -> str:
    """The error message for a config with this model section, or '' if it is valid."""
    data = {"task": {"name": "barks", "max_barks": 4}, "model": {"context_length": 16, **model}, **extra}
    try:
        validate(data, "test config")
    except BarkError as err:
        return str(err)
    return ""


@pytest.mark.parametrize("attention", ["mha", "wrapper"])
def test_heads_must_divide_the_width(attention):
    message = problems({"name": "gpt", "embedding_dim": 10, "heads": 4, "attention": attention})
    assert "model.heads (4)" in message and "model.embedding_dim (10)" in message
    assert "such as 5" in message  # the nearest divisor
    message = problems({"name": "gru", "hidden_size": 10, "heads": 4, "attention": attention})
    assert "model.heads (4)" in message and "model.hidden_size (10)" in message
    assert problems({"name": "gpt", "embedding_dim": 12, "heads": 4, "attention": attention}) == ""
    assert problems({"name": "gru", "embedding_dim": 10, "hidden_size": 12, "heads": 4, "attention": attention}) == ""


@pytest.mark.parametrize("attention", ["single", "simple", "none"])
def test_heads_need_not_divide_the_width_for_one_head(attention):
    assert problems({"name": "gpt", "embedding_dim": 10, "heads": 4, "attention": attention}) == ""
    assert problems({"name": "lstm", "hidden_size": 10, "heads": 4, "attention": attention}) == ""
    # and the model builds and runs
    cfg = validate(
        {"task": {"name": "barks", "max_barks": 4}, "model": {**GPT, "embedding_dim": 10, "attention": attention}},
        "test config",
    )
    assert build_model(cfg.model, V)(tokens(1, 5))[0].shape == (1, 5, V)


def test_rope_needs_an_even_head_size():
    message = problems({"name": "gpt", "embedding_dim": 12, "heads": 4, "positional": "rope"})  # heads of 3
    assert "rope" in message and "odd" in message
    assert problems({"name": "gpt", "embedding_dim": 12, "heads": 4, "positional": "learned"}) == ""
    assert problems({"name": "gpt", "embedding_dim": 12, "heads": 3, "positional": "rope"}) == ""  # heads of 4
    # single and simple use one head of the whole width
    assert problems({"name": "gpt", "embedding_dim": 12, "heads": 4, "positional": "rope", "attention": "single"}) == ""
    assert "odd" in problems(
        {"name": "gpt", "embedding_dim": 9, "heads": 3, "positional": "rope", "attention": "simple"}
    )
    assert problems({"name": "gpt", "embedding_dim": 9, "heads": 3, "positional": "rope", "attention": "none"}) == ""


ECHO = {"name": "echo", "message_length": 4, "max_gap": 8, "train_size": 64, "val_size": 32}


def test_eval_section_sets_the_validation_task():
    cfg = RunConfig.model_validate({"task": ECHO, "eval": {"max_gap": 256}, "model": {"context_length": 300}})
    assert cfg.val_task.max_gap == 256
    assert cfg.task.max_gap == 8
    assert cfg.val_task.message_length == 4 and cfg.val_task.name == "echo"  # the rest from the task
    assert RunConfig.model_validate({"task": ECHO}).val_task == RunConfig.model_validate({"task": ECHO}).task


def test_eval_section_is_checked_against_the_context():
    # eval sequences reach 2 * 4 + 256 + 4 = 268 tokens
    data = {"task": ECHO, "eval": {"max_gap": 256}, "model": {"name": "gpt", "context_length": 64}}
    with pytest.raises(BarkError) as caught:
        validate(data, "test config")
    assert "268" in str(caught.value) and "model.context_length" in str(caught.value)
    data["model"]["context_length"] = 268
    assert validate(data, "test config").val_task.max_gap == 256


def test_eval_is_held_to_the_task_checks():
    # eval's min_gap over the task's max_gap: the validation set could not be drawn
    data = {"task": ECHO, "eval": {"min_gap": 300}, "model": {"context_length": 400}}
    with pytest.raises(BarkError) as caught:
        validate(data, "test config")
    assert str(caught.value) == (
        "test config: eval {'min_gap': 300} makes the validation and test sets' task invalid: "
        "task.min_gap (300) is above task.max_gap (8); swap them, in eval"
    )
    data["eval"] = {"min_gap": 8, "max_gap": 300}  # the advice, followed
    assert validate(data, "test config").val_task.min_gap == 8


def test_unknown_eval_key_is_named_with_a_suggestion():
    data = {"task": ECHO, "eval": {"max_gpa": 256}, "model": {"context_length": 300}}
    with pytest.raises(BarkError) as caught:
        validate(data, "test config")
    assert "eval.max_gpa" in str(caught.value)
    assert "did you mean 'eval.max_gap'" in str(caught.value)
    with pytest.raises(ValidationError):
        RunConfig.model_validate(data)


def test_training_with_eval_reports_accuracy_by_distance_up_to_eval_distances(tmp_path):
    data = {
        "task": ECHO,
        "eval": {"max_gap": 40},
        "model": {**GPT, "layers": 1, "context_length": 56},
        "train": {"steps": 3, "batch_size": 8, "eval_every": 3, "eval_batch_size": 32},
        "sample": {"num_samples": 1, "max_new_tokens": 6},
    }
    cfg = validate(data, "test config")
    run = start_run(cfg, tmp_path)
    summary = train(run, cfg)
    # the buckets are those of the validation set drawn with eval's settings
    val = make_splits(cfg.task, cfg.seed, cfg.val_task).val
    expected = sorted(
        {power_of_two_bucket(d) for d in val.bucket[val.bucket > 0].tolist()}, key=lambda b: int(b.split("-")[0])
    )
    buckets = summary["accuracy_by_distance"]
    assert list(buckets) == expected
    assert all(0 <= a <= 1 for a in buckets.values())
    # training distances are at most 4 + 8 + 2 = 14; eval's reach 4 + 40 + 2 = 46
    assert "32-63" in buckets
    assert int(val.bucket.max()) > 14
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["accuracy_by_distance"] == buckets


# ---- 9. every variant trains through the CLI -----------------------------------------------


@pytest.mark.parametrize(
    "name, attention, positional",
    [
        ("gpt", "mha", "learned"),
        ("gpt", "wrapper", "rope"),
        ("gpt", "single", "sinusoidal"),
        ("gpt", "simple", "none"),
        ("gpt", "none", "learned"),
        ("gpt", "mha", "sinusoidal"),
        ("lstm", "wrapper", "learned"),
        ("gru", "simple", "learned"),
    ],
)
def test_every_variant_trains_through_the_cli(runner, tmp_path, name, attention, positional):
    config = {
        "task": {"name": "echo", "message_length": 4, "max_gap": 8, "train_size": 64, "val_size": 16},
        "model": {"name": name, "embedding_dim": 8, "hidden_size": 8, "layers": 1, "heads": 2, "context_length": 24},
        "train": {"steps": 3, "batch_size": 8, "eval_every": 3, "eval_batch_size": 16},
        "sample": {"num_samples": 1, "max_new_tokens": 6},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = tmp_path / "runs"
    args = ["train", "--config", str(path), "--runs-dir", str(runs)]
    result = runner.invoke(app, [*args, f"model.attention={attention}", f"model.positional={positional}"])
    assert result.exit_code == 0, result.output
    (run,) = runs.iterdir()
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert saved["attention"] == attention
    # a key the family does not use is dropped from the resolved config: an RNN has no positional
    assert saved.get("positional") == (positional if name == "gpt" else None)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and "accuracy_by_distance" in summary
