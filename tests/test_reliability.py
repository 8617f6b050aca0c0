"""Reliability: interrupts and resume, kill -9, a loss that blows up, determinism, safe loading
of checkpoints, and run directories that are never shared.

The interrupt tests send real signals to a real `python -m barkbench train` process; the run is
slow enough (a few hundred tiny steps, a checkpoint every few) to be caught in the middle.
Every process that is compared with another runs with the same environment, so the figures and
the weights can be compared exactly.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
import shutil
import signal
import threading
from pathlib import Path

import pytest
import torch
import yaml
from helpers import SHORT as TINY
from helpers import Proc, cli, figures, meta, metrics, only_run, wait_for
from safetensors.torch import load_file

from barkbench import rundir
from barkbench.config import validate
from barkbench.rundir import start_run

# The run a signal interrupts: long enough to be caught after its first checkpoint.
SLOW = copy.deepcopy(TINY)
SLOW["train"].update(steps=200, eval_every=5, checkpoint_every=5)
SLOW_STEPS = SLOW["train"]["steps"]

# ---- helpers ------------------------------------------------------------------------------


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step-[0-9]*")) if (run / "checkpoints").exists() else []


def final_weights(run: Path) -> dict:
    return load_file(checkpoints(run)[-1] / "model.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), f"{key} differs"


def assert_same_run(run: Path, reference: Path, steps: int) -> None:
    """Figure for figure and bit for bit what an uninterrupted run of the same config gives."""
    got, want = figures(run), figures(reference)
    got_steps = [row["step"] for row in got]
    assert got_steps == sorted(set(got_steps)), f"steps repeated or out of order: {got_steps}"
    assert got_steps[-1] == steps
    assert got == want
    assert checkpoints(run)[-1].name == checkpoints(reference)[-1].name == f"step-{steps:07d}"
    assert_same_weights(final_weights(run), final_weights(reference))
    assert (run / "samples.jsonl").read_text() == (reference / "samples.jsonl").read_text()
    summary, ref_summary = (json.loads((r / "summary.json").read_text()) for r in (run, reference))
    for key in ("val_loss", "val_accuracy", "excess_loss", "steps", "params"):
        assert summary[key] == ref_summary[key], key


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def set_meta(run: Path, **fields) -> None:
    data = meta(run)
    data.update(fields)
    (run / "meta.json").write_text(json.dumps(data))


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory) -> Path:
    """One tiny completed run, trained in-process once for the module; copy it before damaging it."""
    root = tmp_path_factory.mktemp("completed")
    result = cli("train", "--config", write_config(root / "tiny.yaml", TINY), "--runs-dir", root / "runs")
    assert result.exit_code == 0, result.output
    return only_run(root / "runs")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of SLOW, started in the background at once; call it for its directory."""
    root = tmp_path_factory.mktemp("reference")
    proc = Proc(["train", "--config", write_config(root / "slow.yaml", SLOW), "--runs-dir", root / "runs"], root, "ref")

    def finished() -> Path:
        assert proc.wait() == 0, proc.stderr
        return only_run(root / "runs")

    yield finished
    proc.kill_if_running()


@pytest.fixture
def copy_of(tmp_path):
    def make(run: Path, name: str = "copy") -> Path:
        return Path(shutil.copytree(run, tmp_path / "runs" / name))

    return make


# ---- 1. interrupts ------------------------------------------------------------------------


def interrupt(tmp_path: Path, signum: int, name: str) -> tuple[Proc, Path]:
    """Start SLOW in a process, send signum once its first checkpoint exists, wait for it to exit."""
    config = write_config(tmp_path / "slow.yaml", SLOW)
    runs_dir = tmp_path / "runs"
    proc = Proc(["train", "--config", config, "--runs-dir", runs_dir], tmp_path, name)
    try:
        wait_for(lambda: any(runs_dir.glob("*/checkpoints/step-[0-9]*")), proc, what="the first checkpoint")
        proc.popen.send_signal(signum)
        proc.wait(60)
    finally:
        proc.kill_if_running()
    return proc, only_run(runs_dir)


def assert_interrupted(proc: Proc, run: Path, code: int) -> int:
    """The process finished its step, checkpointed, marked the run, said how to resume; the step."""
    stderr = proc.stderr
    assert proc.popen.returncode == code, stderr
    assert "Traceback" not in stderr
    assert "--resume" in stderr and str(run.name) in stderr
    found = re.search(r"interrupted at step (\d+) of (\d+)", stderr)
    assert found, stderr
    step = int(found.group(1))
    assert 0 < step < SLOW_STEPS, "the signal came too late to test an interrupt"
    m = meta(run)
    assert m["status"] == "interrupted"
    assert m["step"] == step
    assert checkpoints(run)[-1].name == f"step-{step:07d}", "no checkpoint at the step it stopped"
    load_file(checkpoints(run)[-1] / "model.safetensors")
    load_file(checkpoints(run)[-1] / "trainer.safetensors")
    assert all(row["step"] <= step for row in metrics(run))
    assert not (run / "summary.json").exists()
    return step


@pytest.mark.slow
def test_sigterm_checkpoints_marks_interrupted_and_resume_matches_an_uninterrupted_run(tmp_path, reference):
    proc, run = interrupt(tmp_path, signal.SIGTERM, "term")
    assert_interrupted(proc, run, 143)

    resumed = Proc(["train", "--resume", run], tmp_path, "resume")
    assert resumed.wait() == 0, resumed.stderr
    assert meta(run)["status"] == "completed"
    assert_same_run(run, reference(), SLOW_STEPS)


@pytest.mark.slow
def test_sigint_is_an_interrupt_too_with_status_130(tmp_path):
    proc, run = interrupt(tmp_path, signal.SIGINT, "int")
    assert_interrupted(proc, run, 130)


# ---- 2. kill -9 ---------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_leaves_a_readable_run_shown_dead_that_resumes_to_the_same_result(tmp_path, reference):
    config = write_config(tmp_path / "slow.yaml", SLOW)
    runs_dir = tmp_path / "runs"
    proc = Proc(["train", "--config", config, "--runs-dir", runs_dir], tmp_path, "killed")
    try:
        wait_for(lambda: len(list(runs_dir.glob("*/checkpoints/step-[0-9]*"))) >= 2, proc, what="two checkpoints")
        proc.popen.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        proc.kill_if_running()
    run = only_run(runs_dir)

    m = meta(run)  # parses
    assert m["status"] == "running"
    rows = metrics(run)  # every line parses
    assert rows and all("step" in row and "val_loss" in row for row in rows)
    assert (run / "metrics.jsonl").read_text().endswith("\n")
    last = checkpoints(run)[-1]
    assert load_file(last / "model.safetensors") and load_file(last / "trainer.safetensors")
    assert int(last.name.removeprefix("step-")) < SLOW_STEPS

    shown = cli("runs", runs_dir)
    assert shown.exit_code == 0, shown.output
    assert "dead" in shown.stdout and "running" not in shown.stdout

    resumed = Proc(["train", "--resume", run], tmp_path, "resume")
    assert resumed.wait() == 0, resumed.stderr
    assert meta(run)["status"] == "completed"
    assert_same_run(run, reference(), SLOW_STEPS)
    assert "completed" in cli("runs", runs_dir).stdout


# ---- 3. a loss that is not finite ----------------------------------------------------------


def test_non_finite_loss_fails_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
    data = copy.deepcopy(TINY)
    data["train"].update(lr=1e30, checkpoint_every=1)  # Adam moves every weight by ~lr: nan at step 2
    result = cli("train", "--config", write_config(tmp_path / "boom.yaml", data), "--runs-dir", tmp_path / "runs")
    run = only_run(tmp_path / "runs")

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = error_lines(result.stderr)
    found = re.search(r"loss became (nan|inf|-inf) at step (\d+)", line)
    assert found, line
    step = int(found.group(2))
    assert "lower train.lr" in line and "1e+30" in line
    m = meta(run)
    assert m["status"] == "failed"
    assert f"step {step}" in m["message"]
    kept = checkpoints(run)
    assert kept and kept[-1].name == f"step-{step - 1:07d}"
    load_file(kept[-1] / "model.safetensors")
    load_file(kept[-1] / "trainer.safetensors")
    assert not (run / "summary.json").exists()


# ---- 4. determinism -----------------------------------------------------------------------


def test_same_config_and_seed_give_the_same_figures_and_weights(tmp_path, completed_run):
    result = cli("train", "--config", write_config(tmp_path / "tiny.yaml", TINY), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    again = only_run(tmp_path / "runs")
    assert again != completed_run
    assert figures(again) == figures(completed_run)
    assert [row["step"] for row in figures(again)] == [6, 12, 18, 24, 30]
    assert_same_weights(final_weights(again), final_weights(completed_run))
    assert (again / "samples.jsonl").read_text() == (completed_run / "samples.jsonl").read_text()


def test_another_seed_gives_other_figures(tmp_path, completed_run):
    data = copy.deepcopy(TINY)
    data["seed"] = 1
    data["train"].update(steps=10)
    result = cli("train", "--config", write_config(tmp_path / "tiny.yaml", data), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert figures(only_run(tmp_path / "runs"))[0] != figures(completed_run)[0]


# ---- 5. safe loading ----------------------------------------------------------------------


class Payload:
    """Unpickling this creates the marker file: proof that a loader ran pickle."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path, how: str) -> None:
    if how == "torch.save":
        torch.save({"tok_emb.weight": Payload(marker)}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"tok_emb.weight": Payload(marker)}, f)


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_the_payload_does_fire_under_an_unsafe_loader(tmp_path, how):
    """So the tests below mean something: an unpickling loader runs it."""
    marker = tmp_path / "pwned"
    plant(tmp_path / "x.pt", marker, how)
    if how == "torch.save":
        torch.load(tmp_path / "x.pt", weights_only=False)
    else:
        with open(tmp_path / "x.pt", "rb") as f:
            pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize(
    "command, file, how",
    [
        ("generate", "model.safetensors", "torch.save"),
        ("generate", "model.safetensors", "pickle.dump"),
        ("resume", "model.safetensors", "torch.save"),
        ("resume", "trainer.safetensors", "pickle.dump"),
    ],
)
def test_a_pickle_in_place_of_a_checkpoint_is_refused_and_never_run(
    tmp_path, completed_run, copy_of, command, file, how
):
    run = copy_of(completed_run)
    if command == "resume":
        set_meta(run, status="interrupted")
    marker = tmp_path / "pwned"
    for checkpoint in checkpoints(run):
        plant(checkpoint / file, marker, how)
    before = meta(run)

    result = cli("generate", run) if command == "generate" else cli("train", "--resume", run)

    assert result.exit_code in (1, 2), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    (line,) = error_lines(result.stderr)
    assert line == result.stderr.strip().splitlines()[-1], "the error is not one line"
    assert file in line and "safetensors" in line
    assert not marker.exists(), "barkbench unpickled the file"
    assert "User:" not in result.stdout  # no samples
    assert meta(run)["status"] == before["status"]


@pytest.mark.parametrize("command", ["generate", "resume"])
def test_a_checkpoint_that_does_not_fit_the_config_is_a_clear_error(completed_run, copy_of, command):
    run = copy_of(completed_run)
    if command == "resume":
        set_meta(run, status="interrupted")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["embedding_dim"] = 32
    cfg["model"]["ffn_dim"] = 128
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    result = cli("generate", run) if command == "generate" else cli("train", "--resume", run)

    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    (line,) = error_lines(result.stderr)
    assert "config.yaml" in line
    assert re.search(r"has shape \(\d+, 16\) where the config builds \(\d+, 32\)", line), line
    assert "User:" not in result.stdout


# ---- 7. run directories are never shared ---------------------------------------------------


def in_threads(n: int, work) -> list:
    """work() from n threads released together; every result, or the first exception."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def go(i):
        try:
            barrier.wait()
            results[i] = work()
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def test_runs_started_together_with_one_name_never_share_a_directory(tmp_path):
    made = in_threads(32, lambda: rundir.create_run_dir(tmp_path / "runs", "same"))
    assert len(set(made)) == len(made) == 32
    assert all(p.is_dir() and p.name.startswith("same-") for p in made)
    assert len(list((tmp_path / "runs").iterdir())) == 32


def test_run_directories_stay_apart_even_when_the_random_suffix_collides(tmp_path, monkeypatch):
    """Every suffix is handed out twice, so half the attempts hit an existing directory."""
    lock, count = threading.Lock(), [0]

    def twice(nbytes):
        with lock:
            count[0] += 1
            return f"{count[0] // 2:04x}"

    monkeypatch.setattr(rundir.secrets, "token_hex", twice)
    made = in_threads(16, lambda: rundir.create_run_dir(tmp_path / "runs", "same"))
    assert len(set(made)) == 16
    assert count[0] > 16, "no collision happened, so the test proved nothing"


def test_start_run_from_many_threads_gives_separate_complete_runs(tmp_path):
    cfg = validate(copy.deepcopy(TINY), "tiny")
    made = in_threads(12, lambda: start_run(cfg, tmp_path / "runs"))
    assert len(set(made)) == 12
    for run in made:
        assert meta(run)["status"] == "running"
        assert yaml.safe_load((run / "config.yaml").read_text())["name"] == "tiny"
