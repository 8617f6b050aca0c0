"""Advice that works: every message that tells the user what to do is followed here, and what it
says to do does what it says. (The advice about damaged runs is followed in test_damage.py.)"""

from __future__ import annotations

import copy
import json
import re
import shlex
import signal
import subprocess
import sys

import pytest
import yaml
from helpers import ENV, SHORT, Proc, cli, meta, metrics, only_run, summary, wait_for

# A run long enough to be caught in the middle: 200 steps, an evaluation and a checkpoint every 5.
SLOW = copy.deepcopy(SHORT)
SLOW["train"].update(steps=200, eval_every=5, checkpoint_every=5)


def write(path, data: dict):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error_line(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    return line


def command_in(text: str, after: str) -> list[str]:
    """The barkbench command a message gives after `after`, as arguments (without `barkbench`)."""
    return shlex.split(text.split(after, 1)[1].strip().rstrip("`"))[1:]


def test_a_loss_that_turns_nan_before_any_checkpoint_says_so_and_its_advice_trains_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = copy.deepcopy(SHORT)
    data["train"]["lr"] = 1e30  # Adam moves every weight by about lr: nan at step 2, before the first checkpoint
    result = cli("train", "--config", write(tmp_path / "boom.yaml", data))
    assert result.exit_code == 1, result.output
    line = error_line(result.stderr)
    run = only_run(tmp_path / "runs")
    assert re.search(r"the training loss became (nan|inf) at step 2 with train\.lr=1e\+30", line), line
    assert "checkpoint" not in line  # there is none, and the message claims none
    assert not list(run.glob("checkpoints/step-*"))
    assert "resuming would repeat it" in line
    fix = command_in(line, "train again: ")
    assert fix == ["train", "--config", f"runs/{run.name}/config.yaml", "train.lr=0.003"]

    followed = cli(*fix)
    assert followed.exit_code == 0, followed.output
    (again,) = set((tmp_path / "runs").iterdir()) - {run}
    assert meta(again)["status"] == "completed"
    assert yaml.safe_load((again / "config.yaml").read_text())["train"]["lr"] == 0.003


def test_a_completed_run_says_how_to_train_it_on_and_that_works(tmp_path):
    result = cli("train", "--config", write(tmp_path / "short.yaml", SHORT), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    run = only_run(tmp_path / "runs")
    refused = cli("train", "--resume", run)
    assert refused.exit_code == 2
    line = error_line(refused.stderr)
    assert "has already completed" in line and "(N above 30)" in line
    fix = [a.replace("N", "36") if a == "train.steps=N" else a for a in command_in(line.split(" (N")[0], "with ")]
    assert fix == ["train", "--resume", str(run), "train.steps=36"]
    followed = cli(*fix)
    assert followed.exit_code == 0, followed.output
    assert summary(run)["steps"] == 36 and metrics(run)[-1]["step"] == 36


def test_the_progress_line_shows_the_train_loss_that_metrics_jsonl_records(tmp_path):
    result = cli("train", "--config", write(tmp_path / "short.yaml", SHORT), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    shown = [float(x) for x in re.findall(r"train loss (\d+\.\d+)", result.stderr)]
    recorded = [round(row["train_loss"], 4) for row in metrics(only_run(tmp_path / "runs"))]
    assert shown == recorded and len(shown) == 5


# ---- advice about a run that is still training: followed by waiting, or by stopping it ----------


@pytest.mark.slow
def test_generate_and_resume_on_a_running_run_say_what_is_true_and_what_works(tmp_path):
    runs = tmp_path / "runs"
    proc = Proc(["train", "--config", write(tmp_path / "slow.yaml", SLOW), "--runs-dir", runs], tmp_path, "live")
    try:
        wait_for(lambda: any(runs.glob("*/checkpoints/step-*")), proc, what="the first checkpoint")
        run = only_run(runs)
        generated = cli("generate", run)
        assert generated.exit_code == 2
        line = error_line(generated.stderr)
        assert f"is still training (pid {proc.popen.pid}, step " in line and "of 200); wait for it to finish" in line
        assert "--resume" not in line  # which would refuse: the run is running

        resumed = cli("train", "--resume", run)
        assert resumed.exit_code == 2
        line = error_line(resumed.stderr)
        assert (
            f"is still running (pid {proc.popen.pid}); wait for it to finish, or stop it (kill {proc.popen.pid}" in line
        )
        proc.popen.send_signal(signal.SIGTERM)  # followed: `kill PID` ...
        assert proc.wait(60) == 143, proc.stderr
    finally:
        proc.kill_if_running()
    assert meta(run)["status"] == "interrupted"
    assert cli("train", "--resume", run).exit_code == 0  # ... "and resume it then"
    assert cli("generate", run, "-n", "1").exit_code == 0  # and once it has finished, generate works


# ---- a reader that goes away: `barkbench train ... | head` -------------------------------------


@pytest.mark.slow
def test_a_closed_output_during_training_is_an_interrupt_whose_resume_command_is_in_meta_json(tmp_path):
    """`2>&1 | head -n 3`: head goes away after the third line of progress; the run's next line
    finds no reader, and the run stops at a checkpoint as on Ctrl-C."""
    config = write(tmp_path / "slow.yaml", SLOW)
    command = f"{shlex.quote(sys.executable)} -m barkbench train --config {config} --runs-dir {tmp_path / 'runs'}"
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{command} 2>&1 | head -n 3"], cwd=tmp_path, env=ENV, capture_output=True
    )
    assert piped.returncode == 128 + signal.SIGPIPE, piped  # barkbench's status: a broken pipe
    assert len(piped.stdout.decode().splitlines()) == 3
    run = only_run(tmp_path / "runs")
    m = meta(run)
    assert m["status"] == "interrupted", m
    assert 0 < m["step"] < 200 and (run / "checkpoints" / f"step-{m['step']:07d}").is_dir()
    assert f"Resume with: barkbench train --resume {run}" in m["message"]
    assert "SystemExit" not in json.dumps(m)

    resumed = cli(*command_in(m["message"], "Resume with: "))  # followed
    assert resumed.exit_code == 0, resumed.output
    assert meta(run)["status"] == "completed"
    steps = [row["step"] for row in metrics(run)]
    assert steps == sorted(set(steps)) and steps[-1] == 200


@pytest.mark.slow
def test_a_closed_stdout_after_training_loses_nothing(tmp_path):
    """`| head -n 1`: the results table finds no reader once head has its line; the run is done."""
    config = write(tmp_path / "short.yaml", SHORT)
    command = f"{shlex.quote(sys.executable)} -m barkbench train --config {config} --runs-dir {tmp_path / 'runs'}"
    piped = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{command} | head -n 1"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0, piped.stderr
    assert "Traceback" not in piped.stderr and "Exception ignored" not in piped.stderr
    assert meta(only_run(tmp_path / "runs"))["status"] == "completed"


def test_a_study_whose_runs_turn_nan_says_how_to_run_it_again_at_a_lower_rate_and_that_works(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = copy.deepcopy(SHORT)
    base["train"]["lr"] = 1e30
    study = {"name": "boom", "base": base, "models": [{"name": "gpt"}], "seeds": [0]}
    result = cli("compare", "--config", write(tmp_path / "boom.yaml", study), "--jobs", "1")
    assert result.exit_code == 1, result.output
    assert "1 of 1 runs did not complete (gpt-s0); report.md says why and what to do" in result.stderr
    directory = only_run(tmp_path / "runs")
    message = json.loads((directory / "results.json").read_text())["runs"][0]["message"]
    fix = command_in(message, "train again: ")
    assert fix == ["compare", "--config", f"runs/{directory.name}/study.yaml", "train.lr=0.003"]
    followed = cli(*fix, "--jobs", "1")
    assert followed.exit_code == 0, followed.output
    (again,) = set((tmp_path / "runs").iterdir()) - {directory}
    assert [row["status"] for row in json.loads((again / "results.json").read_text())["runs"]] == ["completed"]


def test_a_full_disk_while_training_is_one_sentence_and_the_run_resumes_once_there_is_room(tmp_path, monkeypatch):
    from barkbench import scalars

    real, calls = scalars.append_metrics, []

    def full_at_the_third(run, row):
        calls.append(row["step"])
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(run / "metrics.jsonl"))
        real(run, row)

    monkeypatch.setattr(scalars, "append_metrics", full_at_the_third)
    result = cli("train", "--config", write(tmp_path / "short.yaml", SHORT), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    run = only_run(tmp_path / "runs")
    line = error_line(result.stderr)
    assert line == (
        f"error: No space left on device: {run / 'metrics.jsonl'}; once that is fixed, resume the run with: "
        f"barkbench train --resume {run}"
    )
    assert meta(run)["status"] == "failed"
    monkeypatch.setattr(scalars, "append_metrics", real)  # room again
    resumed = cli(*command_in(line, "resume the run with: "))
    assert resumed.exit_code == 0, resumed.output
    assert [row["step"] for row in metrics(run)] == [6, 12, 18, 24, 30]
