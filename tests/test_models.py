"""Models: the contract every family keeps (causality, padding, incremental state equal to the full
pass, state size, gradients everywhere), parametrised over MODELS; then each family's own sums."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import SMALL, V, model_config, random_tokens, small_model, state_size

from barkbench import evaluate
from barkbench.models import MODELS, count_params
from barkbench.models.parts import DecoderOnly
from barkbench.models.protocol import Model
from barkbench.models.recurrent import scan
from barkbench.models.recurrent.network import StepByStepRNN
from barkbench.tasks import TASKS
from barkbench.vocab import ASSISTANT, EOS, PAD

NAMES = list(MODELS)


def test_registry_names():
    assert set(NAMES) >= {"rnn", "lstm", "gru", "gpt"}


def answer_data(seed: int = 0):
    task_cfg = TASKS["echo"].config(message_length=3, min_gap=0, max_gap=10)
    data = TASKS["echo"].make(task_cfg, 24, torch.Generator().manual_seed(seed))
    lengths = (data.tokens != PAD).sum(1)
    assert len(set(lengths.tolist())) > 3  # varied lengths, so batches really pad
    return data


PROMPT = 8  # in the contract tests, tokens [0, PROMPT) are the prompt and the rest the answer


def logits_of(model, tokens, start=None):
    start = torch.full((tokens.shape[0],), PROMPT) if start is None else start
    return model.teacher_forcing(tokens, start)


# ---- the contract, for every model -------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name):
    model = small_model(name)
    logits = logits_of(model, random_tokens(3, 12))
    assert logits.shape == (3, 12, V)


def change(tokens: torch.Tensor, at: int) -> torch.Tensor:
    changed = tokens.clone()
    changed[:, at] = tokens[:, at] % (V - 1) + 1  # a different real token
    assert (changed != tokens).sum() == len(tokens)
    return changed


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [PROMPT - 1, 12, 18])
def test_causal_over_the_answer(name, t):
    """Changing answer token t+1 leaves every output up to t as it was."""
    model = small_model(name)
    tokens = random_tokens(2, 20)
    with torch.no_grad():
        before, after = logits_of(model, tokens), logits_of(model, change(tokens, t + 1))
    answer = slice(PROMPT - 1, t + 1)  # the outputs that predict answer tokens (the first from the prompt's end)
    torch.testing.assert_close(after[:, answer], before[:, answer], atol=1e-6, rtol=0)
    # The check can fail: from t+1 on, the model does see the change.
    assert (after[:, t + 1 :] - before[:, t + 1 :]).abs().amax() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_every_answer_output_sees_the_prompt(name):
    """Changing a prompt token may change every output of the answer: none is cut off from it."""
    model = small_model(name)
    tokens = random_tokens(2, 20)
    with torch.no_grad():
        before, after = logits_of(model, tokens), logits_of(model, change(tokens, 2))
    moved = (after[:, PROMPT - 1 :] - before[:, PROMPT - 1 :]).abs().amax(dim=(0, 2))
    assert (moved > 1e-6).all(), moved


def row_loss_alone(model, tokens: torch.Tensor, start: int) -> float:
    length = int((tokens != PAD).sum())
    x, y, mask = evaluate.answer_batch(tokens[None, :length], torch.tensor([start]))
    assert x.shape[1] == length - 1
    return float(evaluate.answer_loss(logits_of(model, x, torch.tensor([start])), y, mask))


@pytest.mark.parametrize("name", NAMES)
def test_padding_does_not_change_answer_loss(name):
    model = small_model(name)
    data = answer_data()
    lengths = (data.tokens != PAD).sum(1)
    order = torch.argsort(lengths)  # shortest first: it gets the most padding in the batch
    tokens, starts = data.tokens[order], data.answer_start[order]
    with torch.no_grad():
        x, y, mask = evaluate.answer_batch(tokens, starts)
        assert x.shape[1] == int(lengths.max()) - 1
        logits = logits_of(model, x, starts)
        for i in [0, 1, len(order) // 2, len(order) - 1]:
            alone = row_loss_alone(model, tokens[i], int(starts[i]))
            batched = float(evaluate.answer_loss(logits[i : i + 1], y[i : i + 1], mask[i : i + 1]))
            assert batched == pytest.approx(alone, abs=1e-5)
        # The whole batch's loss is the token-weighted mean of the rows' losses.
        per_row = [row_loss_alone(model, tokens[i], int(starts[i])) for i in range(len(order))]
        counts = mask.sum(1).tolist()
        weighted = sum(loss * n for loss, n in zip(per_row, counts)) / sum(counts)
        assert float(evaluate.answer_loss(logits, y, mask)) == pytest.approx(weighted, abs=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_independent_of_batch_size(name):
    model = small_model(name)
    data = answer_data(seed=1)
    label = TASKS["echo"].buckets.label
    one = evaluate.evaluate(model, data, batch_size=1, device="cpu", bucket_label=label)
    for other in (
        evaluate.evaluate(model, data, len(data), "cpu", label),
        evaluate.evaluate(model, data, 5, "cpu", label),
    ):
        for key in ("loss", "accuracy", "bark_accuracy", "stop_accuracy", "exact_match"):
            assert other[key] == pytest.approx(one[key], abs=1e-5), key
        assert other["by_bucket"] == pytest.approx(one["by_bucket"], abs=1e-9)
    assert set(one["by_bucket"]) <= {"4-7", "8-15"}  # distances 5..15


@pytest.mark.parametrize("name", NAMES)
def test_cached_decoding_equals_the_full_pass(name):
    """prefill, then decode one token at a time with the model's state, gives the logits of
    teacher forcing over the whole sequence."""
    model = small_model(name)
    tokens = random_tokens(3, 17)
    prompt = 6
    start = torch.full((3,), prompt)
    with torch.no_grad():
        full = model.teacher_forcing(tokens, start)
        logits, state = model.prefill(tokens[:, :prompt])
        steps = [logits]
        for t in range(prompt, 17):
            logits, state = model.decode(tokens[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full[:, prompt - 1 :], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_models_train_a_step(name):
    # A gradient reaches every parameter through the answer loss (nothing is disconnected).
    model = small_model(name)
    model.train()
    data = answer_data()
    x, y, mask = evaluate.answer_batch(data.tokens, data.answer_start)
    logits = logits_of(model, x, data.answer_start)
    loss = evaluate.answer_loss(logits, y, mask)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
    # cross-check answer_loss against a direct computation
    direct = F.cross_entropy(logits.reshape(-1, V)[mask.reshape(-1)], y.reshape(-1)[mask.reshape(-1)])
    assert float(loss.detach()) == pytest.approx(float(direct.detach()), abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_models_keep_the_protocol(name):
    assert isinstance(small_model(name), Model)


@pytest.mark.parametrize("name", NAMES)
def test_state_bytes_are_the_state_decode_carries(name):
    """state_bytes() is the size of the state decoding carries once the model has read every token
    it fits (context_length; a fixed 12 where there is no limit, read twice over: a state that
    does not grow is the same size at any length)."""
    model = small_model(name)
    prompt = 5
    with torch.no_grad():
        _, state = model.prefill(random_tokens(1, prompt))
        room = model.room(prompt)
        sizes = []
        for token in random_tokens(1, 24 if room is None else room, seed=1)[0]:
            _, state = model.decode(token[None], state)
            sizes.append(state_size(state))
    assert sizes[-1] == model.state_bytes()
    if room is None:
        assert sizes[11] == sizes[-1]


@pytest.mark.parametrize("name", NAMES)
def test_gradient_states_give_a_finite_norm_at_every_position(name):
    """After a backward pass of the answer's loss, each line has one norm per position of x: finite
    (NaN only where a line has no state, an encoder-decoder's other side), every position covered by
    some line, and the answer's loss reaching back to the first prompt position."""
    model = small_model(name)
    x, start = random_tokens(1, 14), torch.tensor([PROMPT])
    logits, read = model.gradient_states(x, start)
    torch.testing.assert_close(logits, model.teacher_forcing(x, start), atol=1e-5, rtol=0)
    y = random_tokens(1, 14, seed=1)
    mask = torch.arange(14)[None] >= PROMPT - 1
    evaluate.answer_loss(logits, y, mask).backward()
    lines = read()
    assert lines
    for line, norms in lines.items():
        assert norms.shape == (14,), line
        assert not norms.isinf().any(), line
    covered = torch.stack([norms.isfinite() for norms in lines.values()]).any(0)
    assert covered.all()
    assert max(float(norms[0]) for norms in lines.values() if math.isfinite(norms[0])) > 0


def test_answer_mask_counts_answer_tokens_and_eos_only():
    data = answer_data()
    x, y, mask = evaluate.answer_batch(data.tokens, data.answer_start)
    m = 3
    assert (mask.sum(1) == m + 1).all()  # the message and <EOS>
    assert (y[mask] != PAD).all()
    assert int((y[mask] == EOS).sum()) == len(data)
    assert (y[mask] != ASSISTANT).all()


# ---- decoder-only models: model(tokens, state) ---------------------------------------------


DECODER_ONLY = [n for n in NAMES if isinstance(small_model(n), DecoderOnly)]


@pytest.mark.parametrize("name", DECODER_ONLY)
@pytest.mark.parametrize("t", [0, 5, 18])
def test_decoder_only_models_are_causal_over_the_prompt_too(name, t):
    model = small_model(name)
    tokens = random_tokens(2, 20)
    with torch.no_grad():
        before, after = model(tokens)[0], model(change(tokens, t + 1))[0]
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=0)
    assert (after[:, t + 1 :] - before[:, t + 1 :]).abs().amax() > 1e-4


@pytest.mark.parametrize("name", DECODER_ONLY)
def test_incremental_state_matches_full_pass(name):
    model = small_model(name)
    tokens = random_tokens(3, 17)
    with torch.no_grad():
        full, _ = model(tokens)
        head, state = model(tokens[:, :6])
        rest, state = model(tokens[:, 6:11], state)
        pieces = [head, rest]
        for t in range(11, 17):  # then one token at a time, as generation does
            step, state = model(tokens[:, t : t + 1], state)
            pieces.append(step)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=0)


def test_gpt_rejects_sequences_past_context_length():
    model = small_model("gpt", context_length=8)
    with torch.no_grad():
        model(random_tokens(1, 8))
        with pytest.raises(ValueError, match="context_length"):
            model(random_tokens(1, 9))
        _, state = model(random_tokens(1, 6))
        with pytest.raises(ValueError, match="context_length"):
            model(random_tokens(1, 3), state)


# ---- parameters and state --------------------------------------------------------------


@pytest.mark.parametrize("name, vectors", [("rnn", 1), ("gru", 1), ("lstm", 2)])
@pytest.mark.parametrize("layers, hidden", [(1, 12), (3, 20)])
def test_rnn_state_bytes(name, vectors, layers, hidden):
    model = small_model(name, layers=layers, hidden_size=hidden)
    assert model.state_bytes() == vectors * layers * hidden * 4
    # and that is really the size of the state the model carries
    _, state = model(random_tokens(1, 4))
    assert state_size(state) == model.state_bytes()


@pytest.mark.parametrize("layers, width, context", [(1, 16, 64), (3, 8, 100)])
def test_gpt_state_bytes(layers, width, context):
    model = small_model("gpt", layers=layers, embedding_dim=width, context_length=context, heads=2)
    assert model.state_bytes() == layers * 2 * context * width * 4
    # and that is the size of the key/value cache at context_length
    _, state = model(random_tokens(1, context))
    assert state_size(state) == model.state_bytes()


def rnn_core_params(gates: int, embed: int, hidden: int, layers: int) -> int:
    first = gates * hidden * (embed + hidden) + 2 * gates * hidden
    later = gates * hidden * (hidden + hidden) + 2 * gates * hidden
    return first + (layers - 1) * later


@pytest.mark.parametrize("name, gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_rnn_count_params(name, gates):
    E, H, L = 5, 7, 2
    model = small_model(name, embedding_dim=E, hidden_size=H, layers=L)
    expected = V * E + rnn_core_params(gates, E, H, L) + 2 * H + (H * V + V)
    assert count_params(model) == expected


def test_gpt_count_params():
    E, F_, L, C = 8, 12, 2, 32
    model = small_model("gpt", embedding_dim=E, ffn_dim=F_, layers=L, context_length=C, heads=2)
    block = 2 * (2 * E) + (E * 3 * E + 3 * E) + (E * E + E) + (E * F_ + F_) + (F_ * E + E)
    expected = V * E + C * E + L * block + 2 * E + (E * V + V)
    assert count_params(model) == expected
    # a hand check for these numbers: 72 + 256 + 2 * 532 + 16 + 81
    assert expected == 1489


def test_gpt_ffn_default_is_four_times_width():
    cfg = model_config(**{**SMALL, "name": "gpt", "ffn_dim": None, "embedding_dim": 16})
    assert cfg.ffn_dim == 64


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 3])
def test_fused_recurrence_equals_the_step_by_step_reference(name, layers):
    """BarkRNN's fused nn.RNN/LSTM/GRU and the textbook loop of cells, given the same weights,
    compute the same logits and carry the same state."""
    model = small_model(name, layers=layers)
    reference = StepByStepRNN(model_config(**{**SMALL, "name": name, "layers": layers}), V).eval()
    tokens = random_tokens(3, 15)
    with torch.no_grad():
        assert not torch.allclose(reference(tokens)[0], model(tokens)[0], atol=1e-3)  # different weights differ
        reference.load_fused(model)
        ours, (hidden, _) = model(tokens)
        theirs, state = reference(tokens)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    last = [s[0] if isinstance(s, tuple) else s for s in state]  # each layer's final h
    torch.testing.assert_close(torch.stack(last), hidden[0] if isinstance(hidden, tuple) else hidden, atol=1e-5, rtol=0)


@pytest.mark.parametrize("core", [torch.nn.RNN, torch.nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("start", [False, True])
def test_the_scans_compute_what_the_torch_module_computes(core, layers, start):
    """scan.recur with a module's weights gives its outputs, its final state and every gradient
    (of the input, the weights and the starting state), in float64 to rounding."""
    module = core(5, 7, num_layers=layers, batch_first=True).double()
    x = torch.randn(3, 11, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(layers, 3, 7, dtype=torch.float64, requires_grad=True) if start else None
    leaves = [x, *module.parameters(), *([h0] if start else [])]
    results = []
    for run in (module, lambda x, h: scan.recur(module, x, h)):
        out, final = run(x, h0)
        loss = out.pow(2).sum() + (final * final.cos()).sum()  # both reach the loss, unevenly
        results.append((out, final, torch.autograd.grad(loss, leaves)))
    (out, final, grads), (theirs, their_final, their_grads) = results
    torch.testing.assert_close(theirs, out, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(their_final, final, atol=1e-12, rtol=1e-12)
    for mine, reference in zip(their_grads, grads):
        torch.testing.assert_close(mine, reference, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("core", [torch.nn.RNN, torch.nn.GRU])
def test_the_scans_drop_out_between_layers_as_the_module_does(core):
    """In training, with dropout 1 between two layers the second reads zeros, in the module and in
    the scans alike (and not at evaluation): so the scans drop out where the module does."""
    module = core(5, 7, num_layers=2, batch_first=True, dropout=1.0).train()
    x = torch.randn(3, 6, 5)
    torch.testing.assert_close(scan.recur(module, x)[0], module(x)[0])
    assert not torch.allclose(scan.recur(module.eval(), x)[0], scan.recur(module.train(), x)[0])


@pytest.mark.parametrize("name", ["TanhScan", "GRUScan"])
@pytest.mark.parametrize("T", [1, 4])
def test_the_scans_backward_is_their_gradient(name, T):
    B, H = 2, 3
    gates = 3 if name == "GRUScan" else 1
    shapes = [(T, B, gates * H), (B, H), (gates * H, H)] + ([(gates * H,)] if name == "GRUScan" else [])
    torch.manual_seed(0)
    inputs = [torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    assert torch.autograd.gradcheck(getattr(scan, name).apply, inputs)


@pytest.mark.parametrize("core", [torch.nn.RNN, torch.nn.GRU])
@pytest.mark.parametrize("T", [1, 5])
def test_a_second_derivative_through_a_scan_is_refused_not_wrong(core, T):
    """The backward passes write with out=, which autograd does not record: a graph of them would
    hold constants where the module's has functions (at T=1 it gave a second derivative off by 2.4)."""
    module = core(5, 7, batch_first=True)
    x = torch.randn(3, T, 5, requires_grad=True)
    (first,) = torch.autograd.grad(scan.recur(module, x)[0].sum(), x)  # the first derivative is there
    assert first.shape == x.shape
    with pytest.raises(NotImplementedError, match="no second derivative"):
        torch.autograd.grad(scan.recur(module, x)[0].sum(), x, create_graph=True)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_an_lstm_runs_on_torchs_kernel_and_the_others_by_scan(name):
    """The LSTM keeps oneDNN's fused kernel, faster on a CPU than a scan; the tanh RNN and the
    GRU are scanned (and on CUDA every core runs on cuDNN: scan.scanned is False there)."""
    model = small_model(name)
    assert scan.scanned(model.core, torch.zeros(1, 2, SMALL["embedding_dim"])) == (name != "lstm")


@pytest.mark.parametrize("bias", [1.0, 0.0, 2.5])
def test_an_lstm_starts_its_forget_gates_at_forget_bias(bias):
    H, layers = 12, 2
    model = small_model("lstm", forget_bias=bias, layers=layers)
    for layer in range(layers):
        total = getattr(model.core, f"bias_ih_l{layer}") + getattr(model.core, f"bias_hh_l{layer}")
        torch.testing.assert_close(total[H : 2 * H], torch.full((H,), bias))  # the forget gate's slice
        assert total[:H].abs().max() < 1.0 and not torch.allclose(
            total[:H], torch.full((H,), bias)
        )  # others as torch draws
    assert model_config(**{**SMALL, "name": "lstm"}).forget_bias == 1.0  # the default
