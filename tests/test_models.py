"""Models: causality, padding, incremental state, parameter counts and state sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from barkbench import evaluate, models, tasks
from barkbench.config import RunConfig
from barkbench.tasks import PAD, TASKS

VOCAB = len(tasks.VOCAB)
NAMES = list(models.MODELS)
SMALL = {"embedding_dim": 16, "hidden_size": 12, "layers": 2, "heads": 2, "ffn_dim": 24, "context_length": 64}


TINY_TASK = {"name": "barks", "min_barks": 1, "max_barks": 2}  # 6 tokens: fits any context_length here


def model_cfg(name: str, **overrides):
    return RunConfig.model_validate({"task": TINY_TASK, "model": {**SMALL, "name": name, **overrides}}).model


def small_model(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = models.build_model(model_cfg(name, **overrides))
    model.eval()
    return model


def random_tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    # Real tokens only (ids 1..8), so nothing here depends on how <PAD> is treated.
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_registry_names():
    assert set(NAMES) == {"rnn", "lstm", "gru", "gpt"}


@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name):
    model = small_model(name)
    logits, state = model(random_tokens(3, 10))
    assert logits.shape == (3, 10, VOCAB)
    assert state is not None


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [0, 5, 18])
def test_causal(name, t):
    model = small_model(name)
    tokens = random_tokens(2, 20)
    changed = tokens.clone()
    changed[:, t + 1] = tokens[:, t + 1] % (VOCAB - 1) + 1  # a different real token
    assert (changed != tokens).sum() == 2
    with torch.no_grad():
        before, _ = model(tokens)
        after, _ = model(changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=0)
    # The check can fail: from t+1 on, the model does see the change.
    assert (after[:, t + 1 :] - before[:, t + 1 :]).abs().amax() > 1e-4


def answer_data(seed: int = 0) -> tasks.Dataset:
    cfg = RunConfig.model_validate({"task": {"name": "echo", "message_length": 3, "min_gap": 0, "max_gap": 10}}).task
    data = TASKS["echo"].make(cfg, 24, torch.Generator().manual_seed(seed))
    lengths = (data.tokens != PAD).sum(1)
    assert len(set(lengths.tolist())) > 3  # varied lengths, so batches really pad
    return data


def row_loss_alone(model, tokens: torch.Tensor, start: int) -> float:
    length = int((tokens != PAD).sum())
    x, y, mask = evaluate.answer_batch(tokens[None, :length], torch.tensor([start]))
    assert x.shape[1] == length - 1
    logits, _ = model(x)
    return float(evaluate.answer_loss(logits, y, mask))


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
        logits, _ = model(x)
        for i in [0, 1, len(order) // 2, len(order) - 1]:
            alone = row_loss_alone(model, tokens[i], int(starts[i]))
            batched = float(evaluate.answer_loss(logits[i : i + 1], y[i : i + 1], mask[i : i + 1]))
            assert batched == pytest.approx(alone, abs=1e-5)
        # The whole batch's loss is the token-weighted mean of the rows' losses.
        per_row = [row_loss_alone(model, tokens[i], int(starts[i])) for i in range(len(order))]
        counts = mask.sum(1).tolist()
        weighted = sum(loss * n for loss, n in zip(per_row, counts)) / sum(counts)
        assert float(evaluate.answer_loss(logits, y, mask)) == pytest.approx(weighted, abs=1e-5)


def test_answer_mask_counts_answer_tokens_and_eos_only():
    data = answer_data()
    x, y, mask = evaluate.answer_batch(data.tokens, data.answer_start)
    m = 3
    assert (mask.sum(1) == m + 1).all()  # the message and <EOS>
    assert (y[mask] != PAD).all()
    assert int((y[mask] == tasks.EOS).sum()) == len(data)
    assert (y[mask] != tasks.ASSISTANT).all()


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_independent_of_batch_size(name):
    model = small_model(name)
    data = answer_data(seed=1)
    one = evaluate.evaluate(model, data, batch_size=1, device="cpu")
    all_ = evaluate.evaluate(model, data, batch_size=len(data), device="cpu")
    some = evaluate.evaluate(model, data, batch_size=5, device="cpu")
    for other in (all_, some):
        assert other["val_loss"] == pytest.approx(one["val_loss"], abs=1e-5)
        assert other["val_accuracy"] == pytest.approx(one["val_accuracy"], abs=1e-9)
        assert other["accuracy_by_distance"] == pytest.approx(one["accuracy_by_distance"], abs=1e-9)
    assert set(one["accuracy_by_distance"]) <= {"4-7", "8-15"}  # distances 5..15


@pytest.mark.parametrize("name", NAMES)
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


def state_size(state) -> int:
    """Bytes of every tensor in a model's (nested) state."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, (tuple, list)):
        return sum(state_size(s) for s in state)
    return 0  # None, or the GPT's position counter


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
    expected = VOCAB * E + rnn_core_params(gates, E, H, L) + 2 * H + (H * VOCAB + VOCAB)
    assert models.count_params(model) == expected


def test_gpt_count_params():
    E, F_, L, C = 8, 12, 2, 32
    model = small_model("gpt", embedding_dim=E, ffn_dim=F_, layers=L, context_length=C, heads=2)
    block = 2 * (2 * E) + (E * 3 * E + 3 * E) + (E * E + E) + (E * F_ + F_) + (F_ * E + E)
    expected = VOCAB * E + C * E + L * block + 2 * E + (E * VOCAB + VOCAB)
    assert models.count_params(model) == expected
    # a hand check for these numbers: 72 + 256 + 2 * 532 + 16 + 81
    assert expected == 1489


def test_gpt_ffn_default_is_four_times_width():
    cfg = model_cfg("gpt", ffn_dim=None, embedding_dim=16)
    assert cfg.ffn_dim == 64


@pytest.mark.parametrize("name", NAMES)
def test_models_train_a_step(name):
    # A gradient reaches every parameter through the answer loss (nothing is disconnected).
    model = small_model(name)
    model.train()
    data = answer_data()
    x, y, mask = evaluate.answer_batch(data.tokens, data.answer_start)
    logits, _ = model(x)
    loss = evaluate.answer_loss(logits, y, mask)
    loss.backward()
    loss = loss.detach()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
    # cross-check answer_loss against a direct computation
    direct = F.cross_entropy(logits.reshape(-1, VOCAB)[mask.reshape(-1)], y.reshape(-1)[mask.reshape(-1)])
    assert float(loss) == pytest.approx(float(direct.detach()), abs=1e-6)
