"""Encoder–decoder models (seq2seq, transformer): pads after a source change nothing, the decoder
is causal over the target and every output sees the source, cached decoding is recomputation,
the attention scores are the papers' formulas, the transformer is torch.nn.Transformer given the
same weights, sizes and state are counted by hand, and both train through the CLI on copy.
(tests/test_models.py holds the contract every model keeps, these two included.)"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from helpers import V, lively, model_config, random_tokens, state_size

from barkbench.cli import app
from barkbench.config import validate
from barkbench.errors import BarkError
from barkbench.models import build_model, count_params
from barkbench.models.attention import AdditiveAlignment, CrossAttention, DotAlignment, MultiHeadAttention
from barkbench.models.transformer.network import ReferenceTransformer
from barkbench.sample import generate
from barkbench.vocab import EOS, PAD

SIZES = {"embedding_dim": 8, "hidden_size": 6, "layers": 2, "heads": 2, "ffn_dim": 12, "context_length": 40}
SEQ2SEQ = [
    {"name": "seq2seq", "cell": cell, "attention": attention, "bidirectional": bidirectional}
    for cell in ("rnn", "lstm", "gru")
    for attention in ("none", "additive", "dot")
    for bidirectional in (False, True)
]
TRANSFORMER = [{"name": "transformer", "positional": p} for p in ("learned", "sinusoidal", "rope", "none")]
VARIANTS = SEQ2SEQ + TRANSFORMER


def label(variant: dict) -> str:
    """A variant's name in test ids: seq2seq-gru-dot-bi, transformer-rope."""
    words = [str(v) for v in variant.values() if not isinstance(v, bool)]
    return "-".join(words + (["bi"] if variant.get("bidirectional") else []))


def build(variant: dict, seed: int = 0, **sizes):
    """A model of this variant at SIZES (sizes on top) with lively weights, in eval mode."""
    torch.manual_seed(seed)
    return lively(build_model(model_config(**{**SIZES, **variant, **sizes}), V), seed)


every_variant = pytest.mark.parametrize("variant", VARIANTS, ids=label)
STARTS = torch.tensor([3, 9, 5, 12])  # answer_start of each row: sources of different lengths


def close(a, b, tol: float = 1e-5):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


# ---- padding -------------------------------------------------------------------------------


@every_variant
def test_each_row_of_a_batch_is_the_row_alone(variant):
    """Rows with sources of different lengths, padded into one batch (and the batch padded on
    the right past every answer), give each row's answer outputs as it gets them alone."""
    model = build(variant)
    x = random_tokens(4, 18)
    padded = torch.cat([x, torch.full((4, 3), PAD)], 1)
    with torch.no_grad():
        batched = model.teacher_forcing(padded, STARTS)
        for b, start in enumerate(STARTS.tolist()):
            alone = model.teacher_forcing(x[b : b + 1, : start + 4], STARTS[b : b + 1])
            close(batched[b, start - 1 : start + 4], alone[0, start - 1 :])
            assert (batched[b, : start - 1] == 0).all()  # no answer token there to predict


@every_variant
def test_pads_after_a_source_change_nothing(variant):
    model = build(variant)
    source, target = random_tokens(3, 9), random_tokens(3, 5, seed=1)
    lengths = torch.tensor([9, 4, 6])
    pads = torch.arange(9) >= lengths[:, None]
    padded = torch.cat([source.masked_fill(pads, PAD), torch.full((3, 4), PAD)], 1)  # and four more pads
    with torch.no_grad():
        batched, _ = model(target, model.encode(padded, lengths))
        for b, n in enumerate(lengths.tolist()):
            alone, _ = model(target[b : b + 1], model.encode(source[b : b + 1, :n], None))
            close(batched[b : b + 1], alone)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_encoders_final_state_is_at_the_last_real_token(cell, bidirectional):
    """Every layer's final state is the one at the row's last real token (the backward pass
    starts there); for the top layer that is its output there (forward) and at position 0
    (backward). A bidirectional encoder's pair goes through the bridge, tanh(W [fwd; bwd] + b)."""
    model = build({"name": "seq2seq", "cell": cell, "bidirectional": bidirectional})
    source, lengths, H = random_tokens(3, 9), torch.tensor([9, 4, 6]), SIZES["hidden_size"]
    with torch.no_grad():
        out, final = model.recur(model.encoder, model.embed(source), lengths)
        state, _ = model.encode(source, lengths)
        for b, n in enumerate(lengths.tolist()):
            alone_out, alone = model.encoder(model.embed(source[b : b + 1, :n]))
            close(out[b : b + 1, :n], alone_out)
            assert (out[b, n:] == 0).all()
            h, alone_h = (final[0], alone[0]) if cell == "lstm" else (final, alone)
            close(h[:, b : b + 1], alone_h)
            close(h[-1 - bidirectional, b], out[b, n - 1, :H])
            if bidirectional:
                close(h[-1, b], out[b, 0, H:])
        if bidirectional:  # the decoder's initial state, layer by layer
            h, s = (final[0], state[0]) if cell == "lstm" else (final, state)
            w = model.bridge[0]
            close(s, torch.tanh(torch.cat([h[0::2], h[1::2]], -1) @ w.weight.T + w.bias))
        else:
            close(state[0] if cell == "lstm" else state, h)


# ---- what the decoder sees ------------------------------------------------------------------


def changed(x: torch.Tensor, at: int) -> torch.Tensor:
    out = x.clone()
    out[:, at] = x[:, at] % (V - 1) + 1  # another real token
    return out


@every_variant
def test_causal_over_the_target_and_every_output_sees_the_source(variant):
    model = build(variant)
    x, start = random_tokens(2, 16), torch.tensor([6, 6])
    with torch.no_grad():
        before = model.teacher_forcing(x, start)
        for t in (5, 9):  # change target token t + 1: outputs up to t stay, the later ones move
            after = model.teacher_forcing(changed(x, t + 1), start)
            close(after[:, : t + 1], before[:, : t + 1], tol=1e-6)
            assert ((after[:, t + 1 :] - before[:, t + 1 :]).abs().amax(dim=(0, 2)) > 1e-5).all()
        for s in (0, 2, 5):  # change any source token: every answer output moves
            after = model.teacher_forcing(changed(x, s), start)
            assert ((after[:, 5:] - before[:, 5:]).abs().amax(dim=(0, 2)) > 1e-5).all()


@every_variant
def test_cached_decoding_is_recomputing(variant):
    model = build(variant)
    with torch.no_grad():
        model.head.bias[EOS] = -1e4  # runs the full length
        tokens, start = random_tokens(3, 15), 5
        full = model.teacher_forcing(tokens, torch.full((3,), start))
        logits, state = model.prefill(tokens[:, :start])
        steps = [logits]
        for t in range(start, 15):
            logits, state = model.decode(tokens[:, t], state)
            steps.append(logits)
    close(torch.stack(steps, 1), full[:, start - 1 :])
    prompt = random_tokens(1, 6, seed=2)[0].tolist()
    # Greedy, and sampled with the same random stream (an untrained decoder's greedy answer often
    # settles on one token; sampled answers wander, so any step where the two differ would show).
    for temperature in (0, 1):
        cached, recomputed = (
            generate(model, prompt, 3, 20, temperature, generator=torch.Generator().manual_seed(0), use_cache=c)
            for c in (True, False)
        )
        assert cached == recomputed
    assert len({token for answer in cached for token in answer}) > 2  # the check could fail


# ---- the attention formulas -------------------------------------------------------------------


def memory_and_mask():
    states = torch.randn(3, 7, 6, generator=torch.Generator().manual_seed(1))
    key_mask = torch.arange(7) < torch.tensor([7, 3, 5])[:, None]
    return states, key_mask


def from_scratch(score, s, states, key_mask):
    """The attention of every decoder output s[b, t] over the encoder states h[b, i], by the book:
    a_ti = softmax_i(score(s_t, h_i)) over the real source tokens, context_t = sum_i a_ti h_i."""
    B, T, S = s.shape[0], s.shape[1], states.shape[1]
    weights = torch.zeros(B, T, S)
    for b in range(B):
        real = int(key_mask[b].sum())
        for t in range(T):
            e = torch.stack([score(s[b, t], states[b, i]) for i in range(real)])
            weights[b, t, :real] = torch.softmax(e, 0)
    return weights @ states, weights


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_alignment_scores_are_the_papers(kind):
    torch.manual_seed(0)
    layer = (AdditiveAlignment if kind == "additive" else DotAlignment)(6, dropout=0.0).eval()
    s = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(2))
    states, key_mask = memory_and_mask()
    if kind == "additive":  # Bahdanau: v . tanh(W s + U h + b)
        W, U, b, v = layer.query.weight, layer.key.weight, layer.key.bias, layer.score.weight[0]
        score = lambda q, h: v @ torch.tanh(W @ q + U @ h + b)  # noqa: E731
    else:  # Luong: s . h
        score = lambda q, h: q @ h  # noqa: E731
    expected, weights = from_scratch(score, s, states, key_mask)
    layer.keep_weights = True
    with torch.no_grad():
        close(layer(s, layer.memory(states, key_mask)), expected)
        assert layer.weights.shape == (3, 1, 4, 7)
        close(layer.weights[:, 0], weights)
        if kind == "dot":  # and the fused path, which keeps no weights, agrees
            layer.keep_weights = False
            close(layer(s, layer.memory(states, key_mask)), expected)


@pytest.mark.parametrize("fused", [True, False])
def test_encoder_self_attention_and_cross_attention_never_attend_to_pads(fused):
    torch.manual_seed(0)
    states, key_mask = memory_and_mask()
    x = torch.randn(3, 4, 6)
    encoder = MultiHeadAttention(6, 2, 0.0, rope=False, fused=fused, causal=False).eval()
    cross = CrossAttention(6, 2, 0.0, fused=fused).eval()
    garbage = states.masked_fill(~key_mask[..., None], 1e3)
    with torch.no_grad():
        for b, n in enumerate(key_mask.sum(1).tolist()):
            alone = encoder(states[b : b + 1, :n])[0]
            close(encoder(garbage, key_mask=key_mask)[0][b : b + 1, :n], alone)
            alone = cross(x[b : b + 1], cross.memory(states[b : b + 1, :n], None))
            close(cross(x, cross.memory(garbage, key_mask))[b : b + 1], alone)
        encoder.keep_weights = cross.keep_weights = True  # the from-scratch path, and its weights
        encoder(garbage, key_mask=key_mask)
        cross(x, cross.memory(garbage, key_mask))
    for layer, queries in ((encoder, 7), (cross, 4)):
        assert layer.weights.shape == (3, 2, queries, 7)
        close(layer.weights.sum(-1), torch.ones(3, 2, queries))
        assert (layer.weights.masked_select(~key_mask[:, None, None, :]) == 0).all()


# ---- the transformer is torch.nn.Transformer ---------------------------------------------------


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "none"])
def test_transformer_equals_nn_transformer_with_the_same_weights(positional):
    """The same logits from torch.nn.Transformer (pre-norm, gelu, dropout 0) given our weights,
    on a batch of sources of different lengths; and the same parameter count. (rope cannot be
    compared: nn.MultiheadAttention has no way to rotate queries and keys.)"""
    model = build({"name": "transformer", "positional": positional})
    reference = ReferenceTransformer(model_config(**SIZES, name="transformer", positional=positional), V).eval()
    assert count_params(reference) == count_params(model)
    x = random_tokens(4, 18)
    with torch.no_grad():
        assert not torch.allclose(reference.teacher_forcing(x, STARTS), model.teacher_forcing(x, STARTS), atol=1e-3)
        reference.load_from(model)
        close(reference.teacher_forcing(x, STARTS), model.teacher_forcing(x, STARTS))
        for layer in model.attention_layers() + model.alignment_layers():  # the from-scratch path too
            layer.keep_weights = True
        close(reference.teacher_forcing(x, STARTS), model.teacher_forcing(x, STARTS))


def test_the_reference_refuses_rope():
    with pytest.raises(ValueError, match="rotary"):
        ReferenceTransformer(model_config(**SIZES, name="transformer", positional="rope"), V)


def test_transformer_self_attention_weights_stand_at_the_sequences_positions():
    """`inspect` labels a layer's weights with the whole sequence: an encoder layer's cover the
    prompt both ways, a decoder layer's the answer, causally; alignment stays target x source."""
    model = build({"name": "transformer", "positional": "learned"})
    for layer in model.attention_layers() + model.alignment_layers():
        layer.keep_weights = True
    x, start = random_tokens(2, 14), torch.tensor([5, 8])
    with torch.no_grad():
        model.teacher_forcing(x, start)
    encoder, decoder = model.attention_layers()[0].weights, model.attention_layers()[-1].weights
    assert encoder.shape == decoder.shape == (2, 2, 14, 14)
    for b, s in enumerate(start.tolist()):
        prompt, answer = slice(0, s), slice(s - 1, 14)
        close(encoder[b, :, prompt, prompt].sum(-1), torch.ones(2, s))
        assert encoder[b].sum() == pytest.approx(2 * s, rel=1e-5)  # nothing outside the prompt
        close(decoder[b, :, answer, answer].sum(-1), torch.ones(2, 15 - s))
        assert (decoder[b, :, answer, answer].triu(1) == 0).all()
        assert decoder[b].sum() == pytest.approx(2 * (15 - s), rel=1e-5)
    assert model.alignment_layers()[0].weights.shape == (2, 2, 14 - 5 + 1, 8)


# ---- sizes and state --------------------------------------------------------------------------


def core_params(gates: int, inputs: int, hidden: int, layers: int, directions: int) -> int:
    first = gates * hidden * (inputs + hidden) + 2 * gates * hidden
    later = gates * hidden * (directions * hidden + hidden) + 2 * gates * hidden
    return directions * (first + (layers - 1) * later)


@pytest.mark.parametrize(
    "cell, gates, attention, bidirectional",
    [("gru", 3, "additive", False), ("lstm", 4, "dot", True), ("rnn", 1, "none", True), ("gru", 3, "none", False)],
)
def test_seq2seq_count_params(cell, gates, attention, bidirectional):
    E, H, L = 5, 7, 2
    variant = {"name": "seq2seq", "cell": cell, "attention": attention, "bidirectional": bidirectional}
    model = build(variant, embedding_dim=E, hidden_size=H, layers=L)
    expected = V * E + core_params(gates, E, H, L, 1 + bidirectional) + core_params(gates, E, H, L, 1)
    if bidirectional:  # the bridge, one for h and one for an LSTM's c
        expected += (1 + (cell == "lstm")) * (2 * H * H + H)
    if attention != "none":
        expected += (2 * H * H + H) * (1 + bidirectional)  # combine; the map of 2H states to H
        expected += {"additive": H * H + (H * H + H) + H, "dot": 0}[attention]  # W; U and b; v
    expected += 2 * H + (H * V + V)  # norm, head
    assert count_params(model) == expected


def test_the_reported_seq2seq_sizes():
    """At embedding_dim 64, hidden_size 64, 2 layers: gru with additive attention."""
    model = build_model(model_config(name="seq2seq", attention="additive"), V)
    gru = 2 * 3 * 64 * 128 + 2 * 2 * 3 * 64
    assert count_params(model) == 9 * 64 + 2 * gru + (64 * 64 + 64 * 64 + 64 + 64) + (128 * 64 + 64) + 128 + 585
    assert count_params(model) == 117_705


def test_transformer_count_params():
    E, F, L, C = 8, 12, 2, 40
    model = build({"name": "transformer", "positional": "learned"})
    norm, ffn, attention = 2 * E, (E * F + F) + (F * E + E), 4 * (E * E + E)
    encoder_block = 2 * norm + attention + ffn
    decoder_block = 3 * norm + 2 * attention + ffn
    expected = V * E + C * E + L * (encoder_block + decoder_block) + 2 * norm + (E * V + V)
    assert count_params(model) == expected == 3241


@pytest.mark.parametrize("variant", SEQ2SEQ[:6] + TRANSFORMER[:1], ids=label)  # rnn, lstm: every attention
def test_state_bytes_are_the_state_carried_at_context_length(variant):
    model = build(variant)
    C = SIZES["context_length"]
    with torch.no_grad():
        if variant["name"] == "seq2seq":  # the encoder states attention keeps: a source of C tokens
            _, state = model.prefill(random_tokens(1, C))
        else:  # C tokens read, as many new ones as room() gives: the target holds Assistant: and them
            _, state = model.prefill(random_tokens(1, 30))
            for token in random_tokens(1, model.room(30))[0]:
                _, state = model.decode(token[None], state)
            assert state[0] == C - 30 + 1
    assert state_size(state) == model.state_bytes()


def test_state_bytes_by_hand():
    H, C, E, L = SIZES["hidden_size"], SIZES["context_length"], SIZES["embedding_dim"], SIZES["layers"]
    sizes = {
        ("gru", "none"): L * H * 4,
        ("lstm", "none"): 2 * L * H * 4,
        ("gru", "dot"): (L * H + C * H) * 4,  # the encoder states
        ("gru", "additive"): (L * H + 2 * C * H) * 4,  # and U h beside them
    }
    for (cell, attention), expected in sizes.items():
        assert build({"name": "seq2seq", "cell": cell, "attention": attention}).state_bytes() == expected
    assert build({"name": "transformer"}).state_bytes() == L * 2 * (C + 1) * E * 4  # Assistant: in both


# ---- gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", SEQ2SEQ[::2] + SEQ2SEQ[1::4] + TRANSFORMER[:1], ids=label)
def test_gradient_states(variant):
    """Over one sequence: the logits are teacher forcing's (seq2seq runs its recurrences unrolled
    for this, so this checks them), each line has a value at its own side's positions and NaN
    elsewhere, and the answer's loss reaches every source position."""
    model = build(variant)
    x, start = random_tokens(1, 14), torch.tensor([6])
    logits, read = model.gradient_states(x, start)
    with torch.no_grad():
        close(logits, model.teacher_forcing(x, start))
    logits[0, 5:].logsumexp(-1).sum().backward()
    lines = read()
    if variant["name"] == "seq2seq":
        assert list(lines) == ["encoder state", "decoder state"]
        source, target = lines["encoder state"], lines["decoder state"]
    else:
        assert list(lines) == ["encoder layer 1", "encoder layer 2", "decoder layer 1", "decoder layer 2"]
        source, target = lines["encoder layer 1"], lines["decoder layer 1"]
    assert source.shape == (14,)
    assert (source[:6] > 0).all() and source[6:].isnan().all()  # the prompt's positions
    assert target[:5].isnan().all() and (target[5:] > 0).all()  # the answer's, from `Assistant:` on


def test_gradient_states_with_pads_in_the_batch_equal_teacher_forcing():
    model = build({"name": "seq2seq", "cell": "lstm", "attention": "dot", "bidirectional": True})
    x = random_tokens(4, 18)
    logits, _ = model.gradient_states(x, STARTS)
    with torch.no_grad():
        close(logits, model.teacher_forcing(x, STARTS))


def test_alignment_layers():
    assert build({"name": "seq2seq", "attention": "none"}).alignment_layers() == []
    assert build({"name": "seq2seq", "attention": "dot"}).attention_layers() == []
    model = build({"name": "seq2seq", "attention": "additive", "bidirectional": True})
    (layer,) = model.alignment_layers()
    layer.keep_weights = True
    with torch.no_grad():
        model.teacher_forcing(random_tokens(4, 18), STARTS)
    assert layer.weights.shape == (4, 1, 18 - 3 + 1, 12)
    close(layer.weights.sum(-1), torch.ones(4, 1, 16))
    pads = torch.arange(12) >= STARTS[:, None]
    assert (layer.weights.masked_select(pads[:, None, None, :]) == 0).all()


# ---- config -----------------------------------------------------------------------------------


def problems(model: dict) -> str:
    try:
        validate({"task": {"name": "copy", "max_length": 8}, "model": model}, "test config")
    except BarkError as err:
        return str(err)
    return ""


def test_config_defaults_and_keys_of_other_families():
    seq = model_config(name="seq2seq")
    assert (seq.cell, seq.bidirectional, seq.attention) == ("gru", False, "none")
    assert model_config(name="transformer").positional == "learned"
    # keys of other families are dropped: one config switches model.name by an override
    assert problems({"name": "seq2seq", "positional": "rope", "ffn_dim": 8}) == ""
    assert problems({"name": "transformer", "cell": "lstm", "bidirectional": True}) == ""
    assert problems({"name": "gpt", "cell": "lstm"}) == ""
    assert "'rnn', 'lstm' or 'gru'" in problems({"name": "seq2seq", "cell": "tanh"})
    assert "'none', 'additive' or 'dot'" in problems({"name": "seq2seq", "attention": "mha"})


def test_transformer_config_checks():
    message = problems({"name": "transformer", "embedding_dim": 10, "heads": 4})
    assert "model.heads (4) does not divide model.embedding_dim (10); use" in message and "such as 5" in message
    assert "odd" in problems({"name": "transformer", "embedding_dim": 12, "heads": 4, "positional": "rope"})
    assert problems({"name": "transformer", "embedding_dim": 12, "heads": 4}) == ""
    # copy sequences reach 2 x 8 + 4 = 20 tokens: source and target together
    assert "reach 20 tokens" in problems({"name": "transformer", "context_length": 19})
    assert problems({"name": "transformer", "context_length": 20}) == ""
    assert problems({"name": "seq2seq", "context_length": 4, "hidden_size": 10, "heads": 4}) == ""  # no limit


# ---- training and inspecting through the CLI ---------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, runner):
    """Runs of seq2seq and transformer variants trained a few steps on copy through the CLI."""
    root = tmp_path_factory.mktemp("encdec")
    config = {
        "task": {"name": "copy", "max_length": 6, "train_size": 64, "val_size": 16},
        "model": {**SIZES, "context_length": 16},
        "train": {"steps": 3, "batch_size": 8, "eval_every": 3, "eval_batch_size": 16},
        "sample": {"num_samples": 2, "max_new_tokens": 8},
    }
    path = root / "copy.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = {}
    for variant in (SEQ2SEQ[9], SEQ2SEQ[16], TRANSFORMER[2]):  # lstm dot, gru additive bidirectional, rope
        overrides = [f"model.{key}={value}" for key, value in variant.items()]
        args = ["train", "--config", str(path), "--runs-dir", str(root / label(variant)), *overrides]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        runs[label(variant)] = next((root / label(variant)).iterdir())
    return runs


def test_encoder_decoders_train_on_copy_through_the_cli(trained):
    for name, run in trained.items():
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == 3 and summary["model"] == name.split("-")[0]
        assert set(summary["accuracy_by_length"]) == {"1-8"}
        assert math.isfinite(summary["val_loss"]) and summary["state_bytes"] > 0
        saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
        assert saved["name"] == name.split("-")[0]


def test_inspect_draws_encoder_decoders(trained, runner, tmp_path):
    for name, run in trained.items():
        result = runner.invoke(app, ["inspect", str(run), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        files = sorted(p.name for p in (tmp_path / name).iterdir())
        transformer = name.startswith("transformer")
        layers = 2 * SIZES["layers"] if transformer else 0  # the encoder's and the decoder's self-attention
        alignments = SIZES["layers"] if transformer else 1  # every decoder block's cross-attention, or seq2seq's one
        expected = [f"attention-layer{n}.png" for n in range(1, layers + 1)]
        expected += [f"alignment-layer{n}.png" for n in range(1, alignments + 1)] + ["gradients.png"]
        assert files == sorted(expected)
