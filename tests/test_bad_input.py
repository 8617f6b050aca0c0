"""The bad-input battery: every way a user can get a config, an override, a prompt or a run
directory wrong is one plain sentence on stderr naming the key or value, exit status 2 (1 for a
failure while running), no traceback, and nothing written or changed under the runs directory."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import yaml
from helpers import SHORT

from barkbench.cli import app


def merged(patch: dict) -> dict:
    """SHORT with `patch` merged in, section by section."""
    data = copy.deepcopy(SHORT)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


def snapshot(root: Path) -> dict | None:
    """Every path under root with its mtime and size: what "nothing changed" compares."""
    if not root.exists():
        return None
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.stat()
            found[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size)
    return found


def set_meta(run: Path, **fields) -> None:
    meta = json.loads((run / "meta.json").read_text())
    meta.update(fields)
    (run / "meta.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory, runner) -> Path:
    """One tiny completed gpt run (context_length 64), trained once for the whole module."""
    root = tmp_path_factory.mktemp("bad-input-base")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(SHORT))
    result = runner.invoke(app, ["train", "--config", str(config), "--runs-dir", str(root / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = (root / "runs").iterdir()
    return run


@pytest.fixture
def layout(tmp_path, completed_run, monkeypatch) -> dict:
    """A runs directory holding a completed run and copies of it in every unfinished state."""
    monkeypatch.chdir(tmp_path)  # so a stray default `runs/` would land where the snapshot sees it
    runs = tmp_path / "runs"
    runs.mkdir()
    paths = {"runs": runs, "config": tmp_path / "config.yaml"}
    for name in ("done", "stopped", "failed", "dead", "live"):
        shutil.copytree(completed_run, runs / name)
        paths[name] = runs / name
    set_meta(runs / "stopped", status="interrupted")
    set_meta(runs / "failed", status="failed", message="the training loss became nan at step 2")
    # `running` on another host with a heartbeat long gone: shown as dead.
    set_meta(runs / "dead", status="running", host="elsewhere.invalid", pid=1, heartbeat=0)
    # `running` with a live process behind it (this one).
    set_meta(runs / "live", status="running", host=socket.gethostname(), pid=os.getpid())
    (runs / "not-a-run").mkdir()
    paths["not-a-run"] = runs / "not-a-run"
    return paths


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
TRAIN = ["train", "--config", "{config}", "--runs-dir", "{runs}"]
VALIDATE = ["validate", "--config", "{config}"]
LONG_PROMPT = "User: " + "woof " * 100 + "Assistant:"

# id, config file (a patch of BASE, raw YAML text, or None for no file), arguments, exit status,
# fragments stderr must contain.
# fmt: off
CASES = [
    # ---- the config file -------------------------------------------------------------------
    ("unknown-key", {"model": {"embeding_dim": 16}}, TRAIN, 2, ["'model.embeding_dim'", "did you mean 'model.embedding_dim'"]),
    ("unknown-top-key", {"sed": 1}, TRAIN, 2, ["'sed'", "did you mean 'seed'"]),
    ("unknown-section", {"trian": {"steps": 5}}, TRAIN, 2, ["'trian.steps'", "did you mean 'train.steps'"]),
    ("wrong-type-int", {"train": {"steps": "many"}}, TRAIN, 2, ["train.steps", "'many'"]),
    ("wrong-type-float", {"train": {"lr": "fast"}}, TRAIN, 2, ["train.lr", "'fast'"]),
    ("wrong-type-section", {"model": 5}, TRAIN, 2, ["model must be a section", "5"]),
    ("negative-size", {"model": {"embedding_dim": -4}}, TRAIN, 2, ["model.embedding_dim", "-4"]),
    ("zero-size", {"train": {"batch_size": 0}}, TRAIN, 2, ["train.batch_size", "0"]),
    ("zero-steps", {"train": {"steps": 0}}, TRAIN, 2, ["train.steps", "0"]),
    ("negative-lr", {"train": {"lr": -0.1}}, TRAIN, 2, ["train.lr", "-0.1"]),
    ("dropout-one", {"model": {"dropout": 1.0}}, TRAIN, 2, ["model.dropout", "1.0"]),
    ("heads-not-dividing", {"model": {"heads": 3}}, TRAIN, 2, ["model.heads (3)", "model.embedding_dim (16)"]),
    ("unknown-model", {"model": {"name": "hyena"}}, TRAIN, 2, ["model.name", "'hyena'"]),
    ("unknown-task", {"task": {"name": "parrot"}}, TRAIN, 2, ["task.name", "'parrot'"]),
    ("min-above-max", {"task": {"min_barks": 9, "max_barks": 3}}, TRAIN, 2, ["task.min_barks (9)", "task.max_barks (3)"]),
    ("sequence-over-context", {"model": {"context_length": 8}}, TRAIN, 2, ["model.context_length is 8"]),
    ("prompt-over-context", {"sample": {"prompt": LONG_PROMPT}}, TRAIN, 2, ["sample.prompt has 102 tokens"]),
    ("unknown-word-in-config-prompt", {"sample": {"prompt": "User: meow Assistant:"}}, TRAIN, 2, ["sample.prompt", "'meow'"]),
    ("bad-name", {"name": "a/b"}, TRAIN, 2, ["name ('a/b')"]),
    ("two-problems-at-once", {"model": {"heads": 3}, "train": {"steps": -1}}, TRAIN, 2, ["2 problems", "model.heads (3)", "train.steps"]),
    pytest.param("device-cuda", {"device": "cuda"}, TRAIN, 2, ["device is 'cuda'"], marks=NO_CUDA),
    ("device-unknown", {"device": "tpu"}, TRAIN, 2, ["device", "'tpu'"]),
    ("broken-yaml", "model: {name: gpt\ntrain: [1\n", TRAIN, 2, ["not valid YAML", "line"]),
    ("yaml-list", "- model\n- train\n", TRAIN, 2, ["holds a list", "not a mapping"]),
    ("yaml-scalar", "just words\n", TRAIN, 2, ["holds a str", "not a mapping"]),
    ("empty-file", "", TRAIN, 2, ["is empty"]),
    ("comments-only-file", "# nothing here\n", TRAIN, 2, ["is empty"]),
    ("missing-file", None, TRAIN, 2, ["config.yaml' does not exist"]),
    ("validate-missing-file", None, ["validate", "--config", "{config}"], 2, ["config.yaml' does not exist"]),
    ("validate-unknown-key", {"model": {"layer": 1}}, ["validate", "--config", "{config}"], 2, ["'model.layer'", "did you mean 'model.layers'"]),
    # ---- the modern families' keys ---------------------------------------------------------
    ("modern-heads-not-dividing", {"model": {"name": "deltanet", "heads": 3}}, VALIDATE, 2, ["model.heads (3) does not divide model.embedding_dim (16)", "such as 2"]),
    ("mamba-state-size-zero", {"model": {"name": "mamba", "state_size": 0}}, VALIDATE, 2, ["model.state_size must be at least 1, but it is 0"]),
    ("mamba-expand-zero", {"model": {"name": "mamba", "expand": 0}}, VALIDATE, 2, ["model.expand must be at least 1, but it is 0"]),
    ("mamba-conv-size-zero", {"model": {"name": "mamba", "conv_size": 0}}, VALIDATE, 2, ["model.conv_size must be at least 1, but it is 0"]),
    ("short-conv-negative", {"model": {"name": "linear_attention", "short_conv": -1}}, VALIDATE, 2, ["model.short_conv must be at least 0, but it is -1"]),
    ("mamba-selective-not-bool", {"model": {"name": "mamba", "selective": "maybe"}}, VALIDATE, 2, ["model.selective must be true or false, but it is 'maybe'"]),
    ("modern-ffn-not-bool", {"model": {"name": "mingru", "ffn": "sometimes"}}, VALIDATE, 2, ["model.ffn must be true or false, but it is 'sometimes'"]),
    ("mamba-state-size-text", {"model": {"name": "mamba", "state_size": "big"}}, VALIDATE, 2, ["model.state_size must be a whole number, but it is 'big'"]),
    ("short-conv-fraction", {"model": {"name": "mlstm", "short_conv": 2.5}}, VALIDATE, 2, ["model.short_conv must be a whole number, but it is 2.5"]),
    # ---- overrides -------------------------------------------------------------------------
    ("override-unknown-key", {}, TRAIN + ["train.stpes=5"], 2, ["'train.stpes'", "did you mean 'train.steps'"]),
    # A misspelt section: the suggestion should be the key the user meant, train.steps.
    ("override-unknown-section", {}, TRAIN + ["trian.steps=5"], 2, ["'trian", "did you mean 'train.steps'"]),
    ("override-bad-value", {}, TRAIN + ["train.steps=abc"], 2, ["train.steps", "'abc'"]),
    ("override-negative", {}, TRAIN + ["model.layers=-1"], 2, ["model.layers", "-1"]),
    ("override-no-equals", {}, TRAIN + ["steps"], 2, ["override 'steps' is not KEY=VALUE"]),
    ("override-empty-key", {}, TRAIN + ["=5"], 2, ["override '=5' is not KEY=VALUE"]),
    ("override-empty-part", {}, TRAIN + ["train..steps=5"], 2, ["override 'train..steps=5' is not KEY=VALUE"]),
    ("override-into-scalar", {}, TRAIN + ["seed.x=1"], 2, ["seed is not a section"]),
    ("override-heads", {}, TRAIN + ["model.heads=5"], 2, ["model.heads (5)"]),
    # Square brackets are text, not terminal markup: the message must still name the value.
    ("override-with-brackets", {}, TRAIN + ["[red]steps"], 2, ["override '[red]steps' is not KEY=VALUE"]),
    ("override-with-closing-tag", {}, TRAIN + ["[/red]"], 2, ["override '[/red]' is not KEY=VALUE"]),
    # ---- the train command line ------------------------------------------------------------
    ("train-no-config", {}, ["train", "--runs-dir", "{runs}"], 2, ["--config"]),
    ("compare-config-to-train", {}, ["train", "--config", "smoke", "--runs-dir", "{runs}"], 2, ["is a compare config", "barkbench compare --config"]),
    ("train-config-to-compare", {}, ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["is a training config", "barkbench train --config"]),
    ("unknown-config-name", {}, ["train", "--config", "echo_gtp", "--runs-dir", "{runs}"], 2, ["'echo_gtp' does not exist", "barkbench configs"]),
    ("resume-with-config", {}, ["train", "--resume", "{stopped}", "--config", "{config}"], 2, ["--resume", "drop --config"]),
    ("resume-with-override", {}, ["train", "--resume", "{stopped}", "train.lr=0.1"], 2, ["--resume", "overrides"]),
    ("resume-with-two-overrides", {}, ["train", "--resume", "{done}", "train.steps=90", "seed=3"], 2, ["only override", "train.steps=N"]),
    ("train-on-to-fewer-steps", {}, ["train", "--resume", "{done}", "train.steps=30"], 2, ["trained 30 steps already", "above that"]),
    ("train-on-a-running-run", {}, ["train", "--resume", "{live}", "train.steps=90"], 2, ["still running"]),
    ("resume-completed", {}, ["train", "--resume", "{done}"], 2, ["already completed"]),
    ("resume-still-running", {}, ["train", "--resume", "{live}"], 2, ["still running", f"pid {os.getpid()}"]),
    ("resume-missing-run", {}, ["train", "--resume", "{runs}/nope"], 2, ["nope' does not exist"]),
    ("resume-not-a-run", {}, ["train", "--resume", "{not-a-run}"], 2, ["not-a-run", "not a barkbench run directory"]),
    # ---- generate --------------------------------------------------------------------------
    ("generate-unknown-word", {}, ["generate", "{done}", "--prompt", "User: meow Assistant:"], 2, ["'meow'", "vocabulary"]),
    ("generate-unknown-word-brackets", {}, ["generate", "{done}", "--prompt", "User: [woof] Assistant:"], 2, ["'[woof]'", "vocabulary"]),
    ("generate-prompt-over-context", {}, ["generate", "{done}", "--prompt", LONG_PROMPT], 2, ["102 tokens", "context_length is 64"]),
    ("generate-missing-run", {}, ["generate", "{runs}/nope"], 2, ["nope' does not exist"]),
    ("generate-missing-run-brackets", {}, ["generate", "{runs}/[x]"], 2, ["[x]' does not exist"]),
    ("generate-missing-run-closing-tag", {}, ["generate", "{runs}/[/x]"], 2, ["[/x]' does not exist"]),
    ("generate-not-a-run", {}, ["generate", "{not-a-run}"], 2, ["not a barkbench run directory"]),
    ("generate-interrupted", {}, ["generate", "{stopped}"], 2, ["is interrupted, not completed", "--resume"]),
    ("generate-failed", {}, ["generate", "{failed}"], 2, ["is failed, not completed"]),
    ("generate-dead", {}, ["generate", "{dead}"], 2, ["is dead, not completed", "--resume"]),
    ("generate-running", {}, ["generate", "{live}"], 2, ["is running, not completed"]),
    ("generate-zero-samples", {}, ["generate", "{done}", "--num-samples", "0"], 2, ["--num-samples"]),
    ("generate-negative-temperature", {}, ["generate", "{done}", "--temperature", "-1"], 2, ["--temperature"]),
    ("runs-missing-dir", {}, ["runs", "{runs}/nope"], 2, ["nope' is not a directory"]),
]
# fmt: on


def _params():
    for case in CASES:
        marks = getattr(case, "marks", ())
        values = getattr(case, "values", case)
        yield pytest.param(*values[1:], id=values[0], marks=marks)


@pytest.mark.parametrize("config, args, code, fragments", list(_params()))
def test_bad_input(layout, runner, config, args, code, fragments):
    if isinstance(config, dict):
        layout["config"].write_text(yaml.safe_dump(merged(config), sort_keys=False))
    elif isinstance(config, str):
        layout["config"].write_text(config)
    argv = [a.format(**{k: str(v) for k, v in layout.items()}) for a in args]
    before = snapshot(layout["runs"])

    result = runner.invoke(app, argv)

    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no escaped exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in stderr:\n{result.stderr}"
    assert snapshot(layout["runs"]) == before, "the runs directory changed"
