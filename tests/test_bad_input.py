"""The bad-input battery: every way a user can get a config, an override, a prompt or a run
directory wrong, for every command and every config section, files that are not text and
configs built to hurt included, is one plain sentence on stderr naming the key or value (one
`error:` line, a list below it where a config has several problems), exit status 2 (1 for a
failure while running), no traceback, nothing on stdout, and nothing written or changed.

CASES is the list, as data: (id, the config file, the command line, exit status, what stderr
must say). The damaged run directories are in test_damage.py."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import ENV, SHORT

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
    (tmp_path / "a-file").write_text("not a directory\n")
    (tmp_path / "empty").mkdir()
    paths |= {"file": tmp_path / "a-file", "empty": tmp_path / "empty"}
    return paths


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each alias names the one before it `width` times (9**9 once expanded)."""
    lines = [f"a0: &a0 [{', '.join(['woof'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ntask: {{name: barks, min_barks: *a{levels - 1}}}\n"


def study(**changes) -> str:
    """A compare config of the tiny run, as YAML text, with these top-level keys changed."""
    data = {"name": "bad-study", "base": merged({}), "models": [{"name": "gpt"}, {"name": "rnn"}], "seeds": [0]}
    return yaml.safe_dump({**data, **changes}, sort_keys=False)


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
TRAIN = ["train", "--config", "{config}", "--runs-dir", "{runs}"]
VALIDATE = ["validate", "--config", "{config}"]
LONG_PROMPT = "User: " + "woof " * 100 + "Assistant:"

# id, config file (a patch of SHORT, raw YAML text, raw bytes, or None for no file), arguments,
# exit status, fragments stderr must contain.
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
    ("mqar-pairs-above-keys", {"task": {"name": "mqar", "num_keys": 4, "num_pairs": 6}}, TRAIN, 2, ["task.num_pairs (6) is above task.num_keys (4)", "raise num_keys"]),
    ("mqar-queries-above-pairs", {"task": {"name": "mqar", "num_pairs": 4, "num_queries": 5}}, TRAIN, 2, ["task.num_queries (5) is above task.num_pairs (4)"]),
    ("selective-copy-tokens-above-length", {"task": {"name": "selective_copy", "length": 6, "num_tokens": 8}}, TRAIN, 2, ["task.num_tokens (8) is above task.length (6)"]),
    ("induction-min-above-max", {"task": {"name": "induction", "min_length": 20, "max_length": 10}}, TRAIN, 2, ["task.min_length (20) is above task.max_length (10)"]),
    ("recall-sequence-over-context", {"task": {"name": "selective_copy", "length": 64}}, TRAIN, 2, ["task sequences reach 76 tokens", "model.context_length is 64"]),
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
    ("generate-failed", {}, ["generate", "{failed}"], 2, ["failed, so it has no final weights", "nan at step 2"]),
    ("generate-dead", {}, ["generate", "{dead}"], 2, ["is dead, not completed", "--resume"]),
    ("generate-running", {}, ["generate", "{live}"], 2, ["is still training", "wait for it to finish"]),
    ("generate-zero-samples", {}, ["generate", "{done}", "--num-samples", "0"], 2, ["--num-samples"]),
    ("generate-negative-temperature", {}, ["generate", "{done}", "--temperature", "-1"], 2, ["--temperature"]),
    ("runs-missing-dir", {}, ["runs", "{runs}/nope"], 2, ["nope' is not a directory"]),
    # ---- files that are not text, and configs built to hurt ----------------------------------
    ("binary-config", b"\x7fELF\x02\x01\x01\x00\x00\x00", TRAIN, 2, ["config.yaml' is a binary file"]),
    ("latin1-comment", b"seed: 0  # caf\xe9\n", TRAIN, 2, ["is not UTF-8 text", "byte 0xe9 at line 1, column 15"]),
    ("utf16-config", "seed: 0\n".encode("utf-16"), ["validate", "--config", "{config}"], 2, ["is a binary file"]),
    ("control-character", "seed: 0\x07\n", TRAIN, 2, ["the character 0x07 at line 1, column 8", "no control characters"]),
    ("alias-bomb", alias_bomb(), ["validate", "--config", "{config}"], 2, ["expands to more than 100,000 values"]),
    ("alias-bomb-study", alias_bomb(), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["expands to more than 100,000"]),
    ("alias-in-itself", "task: &t {name: barks, x: *t}\n", TRAIN, 2, ["holds an alias inside itself"]),
    ("nested-too-deep", "eval: " + "[" * 40 + "]" * 40 + "\n", TRAIN, 2, ["nested more than 32 levels deep"]),
    ("nested-past-libyaml", "eval: " + "[" * 2000 + "]" * 2000 + "\n", TRAIN, 2, ["nested more than 32 levels deep"]),
    ("config-too-big", "# " + "woof " * 220_000 + "\nseed: 0\n", TRAIN, 2, ["1,100,011 bytes", "over the 1,048,576"]),
    ("duplicate-section", "train:\n  steps: 5\nseed: 0\ntrain:\n  lr: 0.1\n", TRAIN, 2, ["the key 'train' twice, at lines 1 and 4"]),
    ("duplicate-key", "train:\n  steps: 5\n  steps: 6\n", ["validate", "--config", "{config}"], 2, ["'train.steps' twice, at lines 2 and 3"]),
    ("config-is-a-directory", {}, ["train", "--config", "{empty}", "--runs-dir", "{runs}"], 2, ["empty' is a directory"]),
    ("override-alias-bomb", {}, TRAIN + ["eval=&e [*e]"], 2, ["override 'eval=&e [*e]' holds an alias inside itself"]),
    # ---- every section of a training config -------------------------------------------------
    ("task-zero-length", {"task": {"name": "echo", "message_length": 0}}, TRAIN, 2, ["task.message_length", "0"]),
    ("task-zero-train-size", {"task": {"train_size": 0}}, TRAIN, 2, ["task.train_size must be at least 1"]),
    ("model-attention-unknown", {"model": {"attention": "magic"}}, TRAIN, 2, ["model.attention must be one of", "'magic'"]),
    ("model-positional-unknown", {"model": {"positional": "gps"}}, TRAIN, 2, ["model.positional", "'gps'"]),
    ("train-lr-nan", "train: {lr: .nan}\n", TRAIN, 2, ["train.lr must be a finite number"]),
    ("train-eval-every-zero", {"train": {"eval_every": 0}}, TRAIN, 2, ["train.eval_every must be at least 1"]),
    ("train-min-lr-ratio", {"train": {"min_lr_ratio": 2}}, TRAIN, 2, ["train.min_lr_ratio must be at most 1"]),
    ("sample-temperature-inf", {"sample": {"temperature": float("inf")}}, TRAIN, 2, ["sample.temperature must be a finite number"]),
    ("sample-top-k-zero", {"sample": {"top_k": 0}}, TRAIN, 2, ["sample.top_k must be at least 1"]),
    ("sample-negative-samples", {"sample": {"num_samples": -1}}, TRAIN, 2, ["sample.num_samples must be at least 0"]),
    ("log-unknown-key", {"log": {"tensorbord": True}}, TRAIN, 2, ["'log.tensorbord'", "did you mean 'log.tensorboard'"]),
    ("log-not-a-bool", {"log": {"tensorboard": "maybe"}}, TRAIN, 2, ["log.tensorboard must be true or false"]),
    ("eval-not-a-section", {"eval": 5}, TRAIN, 2, ["eval must be a section"]),
    ("eval-unknown-task-key", {"eval": {"max_gapp": 5}}, TRAIN, 2, ["unknown key 'eval.max_gapp'"]),
    ("threads-zero", {"threads": 0}, TRAIN, 2, ["threads must be at least 1"]),
    ("seed-negative", {"seed": -1}, TRAIN, 2, ["seed must be at least 0"]),
    # ---- an override's error names the override, not the file ---------------------------------
    ("override-blamed", {}, TRAIN + ["train.stpes=5"], 2, ["error: override 'train.stpes=5': unknown key"]),
    ("override-blamed-check", {}, TRAIN + ["model.heads=5"], 2, ["error: override 'model.heads=5': model.heads (5)"]),
    ("override-temperature-nan", {}, TRAIN + ["sample.temperature=nan"], 2, ["override 'sample.temperature=nan'", "finite"]),
    # ---- where runs go --------------------------------------------------------------------------
    ("runs-dir-is-a-file", {}, ["train", "--config", "{config}", "--runs-dir", "{file}"], 2, ["--runs-dir", "a-file' is a file"]),
    ("runs-dir-inside-a-file", {}, ["train", "--config", "{config}", "--runs-dir", "{file}/runs"], 2, ["is inside", "a-file', which is a file"]),
    ("compare-runs-dir-is-a-file", study(), ["compare", "--config", "{config}", "--runs-dir", "{file}"], 2, ["a-file' is a file"]),
    ("resume-latest-of-none", {}, ["train", "--resume", "latest", "--runs-dir", "{empty}"], 2, ["no run directory under", "empty"]),
    # ---- generate and inspect ---------------------------------------------------------------
    ("generate-temperature-nan", {}, ["generate", "{done}", "--temperature", "nan"], 2, ["--temperature must be a finite number", "nan"]),
    ("generate-temperature-inf", {}, ["generate", "{done}", "--temperature", "inf"], 2, ["--temperature must be a finite number", "inf"]),
    ("generate-top-k-zero", {}, ["generate", "{done}", "--top-k", "0"], 2, ["--top-k"]),
    ("generate-latest-of-none", {}, ["generate", "latest", "--runs-dir", "{empty}"], 2, ["no run directory under"]),
    ("inspect-out-is-a-file", {}, ["inspect", "{done}", "--out", "{file}"], 2, ["--out", "a-file' is a file"]),
    ("inspect-out-inside-a-file", {}, ["inspect", "{done}", "--out", "{file}/pictures"], 2, ["--out", "which is a file"]),
    ("inspect-empty-prompt", {}, ["inspect", "{done}", "--prompt", " "], 2, ["--prompt is empty"]),
    ("inspect-unknown-word", {}, ["inspect", "{done}", "--prompt", "User: meow Assistant:"], 2, ["'meow'", "vocabulary"]),
    ("inspect-interrupted", {}, ["inspect", "{stopped}"], 2, ["is interrupted, not completed", "--resume"]),
    ("inspect-missing-run", {}, ["inspect", "{runs}/nope"], 2, ["nope' does not exist"]),
    # ---- runs, validate, configs ------------------------------------------------------------
    ("runs-on-a-file", {}, ["runs", "{file}"], 2, ["a-file' is not a directory"]),
    ("validate-no-config", {}, ["validate"], 2, ["Missing option '--config'"]),
    ("validate-bad-study", study(seeds=[0, 0]), ["validate", "--config", "{config}"], 2, ["repeats a seed"]),
    ("configs-extra-argument", {}, ["configs", "extra"], 2, ["unexpected extra argument"]),
    # ---- compare and its config's own keys --------------------------------------------------
    ("compare-duplicate-models", study(models=[{"name": "gpt"}, {"name": "rnn"}, {"name": "gpt"}]), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["models lists {'name': 'gpt'} twice (entries 1 and 3)"]),
    ("compare-duplicate-default-model", study(models=[{}, {"name": "gpt"}]), ["validate", "--config", "{config}"], 2, ["twice (entries 1 and 2)"]),
    ("compare-base-unknown-name", study(base="echo_gtp"), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["base:", "echo_gtp' does not exist", "barkbench configs"]),
    ("compare-base-is-a-study", study(base="smoke"), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["base:", "is a compare config"]),
    ("compare-base-not-a-mapping", study(base="a-file"), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["base:", "holds a str"]),
    ("compare-no-models", study(models=[]), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["models must list at least one"]),
    ("compare-model-not-a-section", study(models=[5]), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["models.0"]),
    ("compare-sweep-not-a-list", study(sweep={"task.max_barks": 5}), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["sweep.task.max_barks must be a non-empty list"]),
    ("compare-sweep-unknown-key", study(sweep={"task.max_barkz": [3, 4]}), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["'task.max_barkz'", "did you mean 'task.max_barks'"]),
    ("compare-tune-empty", study(tune={"train.lr": []}), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["tune.train.lr must be a non-empty list"]),
    ("compare-unknown-key", study(seed=[1]), ["compare", "--config", "{config}", "--runs-dir", "{runs}"], 2, ["unknown key 'seed'", "did you mean 'seeds'"]),
    ("compare-bad-override", study(), ["compare", "--config", "{config}", "--runs-dir", "{runs}", "train.steps=-1"], 2, ["override 'train.steps=-1'", "at least 1"]),
    ("compare-jobs-zero", study(), ["compare", "--config", "{config}", "--runs-dir", "{runs}", "--jobs", "0"], 2, ["--jobs"]),
    ("compare-unknown-launcher", study(), ["compare", "--config", "{config}", "--runs-dir", "{runs}", "--launcher", "slurm"], 2, ["--launcher 'slurm' is not one of"]),
    ("compare-resume-a-run", {}, ["compare", "--resume", "{done}"], 2, ["not a barkbench study directory"]),
    ("compare-resume-with-config", study(), ["compare", "--resume", "{done}", "--config", "{config}"], 2, ["drop --config"]),
    # ---- report -----------------------------------------------------------------------------
    ("report-missing", {}, ["report", "{runs}/nope"], 2, ["nope' does not exist"]),
    ("report-a-run", {}, ["report", "{done}"], 2, ["not a barkbench study directory"]),
    ("report-latest-of-none", {}, ["report", "latest", "--runs-dir", "{empty}"], 2, ["no study directory under"]),
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
    elif isinstance(config, bytes):
        layout["config"].write_bytes(config)
    argv = [a.format(**{k: str(v) for k, v in layout.items()}) for a in args]
    before = snapshot(layout["config"].parent)

    result = runner.invoke(app, argv)

    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no escaped exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, f"not one error:\n{result.stderr}"
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in stderr:\n{result.stderr}"
    assert snapshot(layout["config"].parent) == before, "something was written"


# ---- a directory that cannot be written: a read-only filesystem ------------------------------


def read_only(directory: Path) -> list[str]:
    """The command prefix that runs a command where `directory` is a read-only filesystem: a
    mount namespace of its own, with an empty tmpfs mounted there read-only."""
    mount = 'mount -t tmpfs -o ro none "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, str(directory)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--config", "{config}", "--runs-dir", "{ro}/runs"], "--runs-dir '{ro}/runs' cannot be written"),
        (["train", "--config", "{config}", "--runs-dir", "{ro}"], "--runs-dir '{ro}' cannot be written"),
        (["compare", "--config", "smoke", "--runs-dir", "{ro}/runs"], "--runs-dir '{ro}/runs' cannot be written"),
        (["inspect", "{done}", "--out", "{ro}/pictures"], "--out '{ro}/pictures' cannot be written"),
    ],
)
def test_a_directory_on_a_read_only_filesystem_is_one_sentence_and_nothing_is_written(
    tmp_path, completed_run, args, words
):
    ro = tmp_path / "ro"
    ro.mkdir()
    prefix = read_only(ro)
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"]).returncode != 0:
        pytest.skip("mounting a read-only filesystem needs `unshare --mount` and the right to mount (root)")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(SHORT))
    values = {"config": config, "ro": ro, "done": completed_run}
    argv = [a.format(**values) for a in args]
    before = snapshot(completed_run)
    proc = subprocess.run([*prefix, sys.executable, "-m", "barkbench", *argv], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: {words.format(**values)}: '{ro}' is on a read-only file system;"), line
    assert proc.stdout == "" and snapshot(completed_run) == before
