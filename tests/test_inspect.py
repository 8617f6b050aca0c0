"""barkbench inspect: the pictures exist, are PNGs, and the gradients they draw are the right ones."""

from __future__ import annotations

import pytest
import torch
import yaml
from helpers import PNG, V

from barkbench.cli import app
from barkbench.config import RunConfig
from barkbench.inspection import example, gradient_norms
from barkbench.models import build_model


def echo_config(model: dict) -> dict:
    return {
        "name": "inspect",
        "task": {"name": "echo", "message_length": 3, "max_gap": 6, "train_size": 64, "val_size": 16},
        "model": {"embedding_dim": 16, "hidden_size": 16, "heads": 2, "layers": 2, "context_length": 32, **model},
        "train": {"steps": 3, "batch_size": 8, "eval_every": 3},
        "sample": {"num_samples": 1, "max_new_tokens": 4},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory, runner):
    """Completed runs of a gpt and of an rnn with attention, trained through the CLI."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, model in {"gpt": {"name": "gpt"}, "rnn": {"name": "rnn", "attention": "mha"}}.items():
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(echo_config(model)))
        result = runner.invoke(app, ["train", "--config", str(path), "--runs-dir", str(root / name)])
        assert result.exit_code == 0, result.output
        runs[name] = next((root / name).iterdir())
    return runs


@pytest.mark.parametrize("name, layers", [("gpt", 2), ("rnn", 1)])
def test_inspect_draws_attention_per_layer_and_gradients(runner, trained, tmp_path, name, layers):
    result = runner.invoke(app, ["inspect", str(trained[name]), "--out", str(tmp_path / "pics")])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "pics").iterdir())
    assert files == sorted([f"attention-layer{n}.png" for n in range(1, layers + 1)] + ["gradients.png"])
    for f in files:
        assert (tmp_path / "pics" / f).read_bytes()[:8] == PNG


def test_inspect_with_a_prompt_and_default_directory(runner, trained):
    result = runner.invoke(app, ["inspect", str(trained["gpt"]), "--prompt", "User: woof arf speak Assistant:"])
    assert result.exit_code == 0, result.output
    assert (trained["gpt"] / "inspect" / "gradients.png").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["inspect", "no/such/run"], "does not exist"),
        (["inspect", "{gpt}", "--prompt", "User: meow Assistant:"], "'meow'"),
        (["inspect", "{gpt}", "--prompt", "  "], "--prompt is empty"),
    ],
)
def test_inspect_bad_input(runner, trained, args, fragment):
    result = runner.invoke(app, [a.format(gpt=trained["gpt"]) for a in args])
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_rnn_gradient_reaches_back_through_the_recurrence(name):
    # The state carried out of a prompt position has no loss of its own: its gradient comes only
    # through the recurrence from the answer. It must be non-zero (a hook on the core's output,
    # which the recurrence does not use, would give exactly zero there).
    torch.manual_seed(0)
    cfg = RunConfig.model_validate(echo_config({"name": name}))
    model = build_model(cfg.model, V)
    tokens, start, given = example(cfg, model, None)
    (norms,) = gradient_norms(model, tokens, start, given).values()
    assert (norms[: start - 1] > 0).all()
    assert norms[-1] == 0  # nothing depends on the last state


def test_gpt_gradients_one_line_per_block_and_attention_rows_sum_to_one():
    torch.manual_seed(0)
    cfg = RunConfig.model_validate(echo_config({"name": "gpt"}))
    model = build_model(cfg.model, V)
    tokens, start, given = example(cfg, model, None)
    norms = gradient_norms(model, tokens, start, given)
    assert list(norms) == ["entering layer 1", "entering layer 2"]
    assert all(n.shape == (len(tokens) - 1,) and (n[: start - 1] > 0).all() for n in norms.values())
    for layer in model.attention_layers():
        layer.keep_weights = True
    with torch.no_grad():
        model(torch.tensor([tokens[:-1]]))
    for layer in model.attention_layers():
        assert torch.allclose(layer.weights.sum(-1), torch.ones(1))
