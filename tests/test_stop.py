"""train.stop_at: a run stops at its first evaluation whose validation accuracy of the answer's
content reaches it, is measured on test there, says so, and keeps the rule when resumed, when
killed after its stop, and when trained on."""

from __future__ import annotations

import copy
import json

import pytest
from helpers import SHORT, SMOKE, all_figures, cli, figures, meta, metrics, summary

from barkbench.config import validate
from barkbench.errors import Interrupted
from barkbench.rundir import start_run
from barkbench.study.report_file import stops
from barkbench.train import train


def config(**train_keys) -> dict:
    """SHORT's model, evaluated and checkpointed every 10 steps of 50, on a task it learns some of in
    that time: echo of a 2-bark message right after `speak`."""
    data = copy.deepcopy(SHORT)
    data["task"] = {"name": "echo", "message_length": 2, "max_gap": 0, "train_size": 256, "val_size": 32}
    data["train"].update(steps=50, lr=0.01, eval_every=10, checkpoint_every=10, **train_keys)
    return data


def trained(data: dict, runs, stop_after: int | None = None):
    """Train a config mapping in this process; with stop_after, ask it to stop after that step
    (as Ctrl-C would) and resume it to the end. Its run directory."""
    cfg = validate(data, "test config")
    run = start_run(cfg, runs)
    if stop_after is not None:
        steps = iter(range(1, 10**6))
        with pytest.raises(Interrupted):
            train(run, cfg, stop_requested=lambda: next(steps) >= stop_after)
        train(run, cfg, resume=True)
    else:
        train(run, cfg)
    return run


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    """The validation accuracy of the answer's barks at steps 10 to 50 without stop_at, and a
    stop_at that the step-20 evaluation reaches first."""
    run = trained(config(), tmp_path_factory.mktemp("free"))
    accuracy = {row["step"]: row["bark_accuracy"] for row in metrics(run)}
    assert accuracy[20] > accuracy[10], accuracy  # this seed learns a little between them
    return accuracy, accuracy[20]


def test_a_run_stops_at_the_first_evaluation_that_reaches_stop_at(tmp_path, curve):
    accuracy, stop_at = curve
    run = trained(config(stop_at=stop_at), tmp_path)
    final = summary(run)
    assert final["stopped_early"] is True and final["steps"] == 20
    assert final["bark_accuracy"] == accuracy[20] and "test_bark_accuracy" in final  # test measured at the stop
    assert [row["step"] for row in metrics(run)] == [10, 20]
    assert meta(run)["status"] == "completed" and meta(run)["step"] == 20
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "step-0000020"
    assert (run / "curves.png").exists()


def test_a_run_that_never_reaches_it_trains_every_step(tmp_path):
    final = summary(trained(config(stop_at=1.0), tmp_path))
    assert final["stopped_early"] is False and final["steps"] == 50


def test_a_resumed_run_stops_where_an_uninterrupted_one_does(tmp_path, curve):
    _, stop_at = curve
    whole = trained(config(stop_at=stop_at), tmp_path / "whole")
    resumed = trained(config(stop_at=stop_at), tmp_path / "resumed", stop_after=13)
    assert all_figures(resumed) == all_figures(whole)


def test_a_run_killed_after_its_stop_resumes_to_the_same_summary_without_training(tmp_path, curve):
    _, stop_at = curve
    run = trained(config(stop_at=stop_at), tmp_path)
    before = all_figures(run)
    (run / "summary.json").unlink()  # as if killed while it sampled, after the stop's checkpoint
    data = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**data, "status": "interrupted"}))
    train(run, validate(config(stop_at=stop_at), "test config"), resume=True)
    assert all_figures(run) == before


def test_a_stopped_run_trained_on_obeys_the_rule_again(tmp_path):
    run = trained(config(stop_at=0.01), tmp_path)  # any accuracy reaches 0.01: it stops at step 10
    assert summary(run)["steps"] == 10
    result = cli("train", "--resume", run, "train.steps=80")
    assert result.exit_code == 0, result.output
    assert "stopped early at step 20 of 80" in result.stderr  # its next evaluation, not the end
    assert summary(run)["steps"] == 20 and [row["step"] for row in figures(run)] == [10, 20]


def test_a_study_says_which_runs_stopped_early(tmp_path):
    runs = tmp_path / "runs"
    args = ["compare", "--config", SMOKE, "--runs-dir", runs, "--jobs", "1", "train.stop_at=0.01"]
    result = cli(*args, "train.steps=15", "train.eval_every=3", "task.train_size=64", "sample.num_samples=1")
    assert result.exit_code == 0, result.output
    (study,) = runs.iterdir()
    report = (study / "report.md").read_text()
    rows = json.loads((study / "results.json").read_text())["runs"]
    stopped = sorted(row["steps"] for row in rows if row["stopped_early"])
    assert stopped and all(row["steps"] % 3 == 0 and row["steps"] < 15 for row in rows if row["stopped_early"])
    assert all(row["steps"] == 15 for row in rows if not row["stopped_early"])
    where = f"step {stopped[0]}" if len(set(stopped)) == 1 else f"steps {stopped[0]} to {stopped[-1]}"
    assert f"{len(stopped)} of 4 runs stopped early, at {where}" in report
    assert f"| {stopped[0]} (stopped early) |" in report


def test_a_study_with_stop_at_where_no_run_stopped_says_so():
    runs = [{"steps": 15, "stopped_early": False}, {"steps": 15, "stopped_early": False}]
    (said,) = [line for line in stops({"runs": runs, "stop_at": [0.99], "content": "values"}) if line]
    assert said.startswith("No run stopped early: a run stops at its first evaluation whose validation accuracy of")
