"""Training: reproducible from the seed, task figures in summary.json, run directories, shipped configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import all_figures, tiny, train_config

from barkbench.cli import app
from barkbench.config import load_config, validate
from barkbench.rundir import read_jsonl, start_run
from barkbench.tasks import TASKS

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
FEW_STEPS = [
    "train.steps=2",
    "train.eval_every=1",
    "task.train_size=64",
    "task.val_size=16",
    "sample.num_samples=1",
    "sample.max_new_tokens=5",
]


# ---- reproducibility ------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt", "lstm"])
def test_same_config_and_seed_give_the_same_figures(tmp_path, model):
    data = tiny()
    data["model"]["name"] = model
    data["model"]["dropout"] = 0.1  # dropout draws from the seeded generator too
    first = all_figures(train_config(data, tmp_path / "a"))
    second = all_figures(train_config(data, tmp_path / "b"))
    assert len(first[0]) == 3
    assert first == second


def test_a_different_seed_gives_different_figures(tmp_path):
    data = tiny()
    first = all_figures(train_config(data, tmp_path / "a"))
    data["seed"] = 1
    second = all_figures(train_config(data, tmp_path / "b"))
    assert [row["val_loss"] for row in first[0]] != [row["val_loss"] for row in second[0]]
    assert first[1]["val_loss"] != second[1]["val_loss"]


# ---- task figures ---------------------------------------------------------------------------


def test_cycle_summary_has_stop_rate_and_cycle_adherence(tmp_path):
    data = tiny()
    data["task"] = {"name": "cycle", "min_barks": 4, "max_barks": 12, "train_size": 64, "val_size": 16}
    data["sample"] = {"num_samples": 4, "max_new_tokens": 20}
    run = train_config(data, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "cycle"
    assert 0 <= summary["stop_rate"] <= 1
    assert 0 <= summary["cycle_adherence"] <= 1
    assert summary["floor_loss"] > 0  # only where <EOS> falls is uncertain
    assert "accuracy_by_distance" not in summary
    assert len(read_jsonl(run / "samples.jsonl")) == 4


def test_echo_summary_has_accuracy_by_distance(tmp_path):
    data = tiny()
    m, min_gap, max_gap = 4, 0, 20
    data["task"] = {
        "name": "echo",
        "message_length": m,
        "min_gap": min_gap,
        "max_gap": max_gap,
        "train_size": 64,
        "val_size": 64,
    }
    run = train_config(data, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["floor_loss"] == 0
    buckets = summary["accuracy_by_distance"]
    assert buckets
    lows = []
    for label, accuracy in buckets.items():
        match = re.fullmatch(r"(\d+)-(\d+)", label)
        assert match, label
        low, high = int(match[1]), int(match[2])
        assert low <= high
        # every message token is m + gap + 2 tokens from its copy
        assert high >= m + min_gap + 2 and low <= m + max_gap + 2, label
        assert 0 <= accuracy <= 1
        lows.append(low)
    assert lows == sorted(lows)
    assert len(set(lows)) == len(lows)
    for row in read_jsonl(run / "samples.jsonl"):
        assert row["prompt"].startswith("User: ") and row["prompt"].endswith(" Assistant:")


# ---- run directories ------------------------------------------------------------------------


def test_runs_with_the_same_name_never_share_a_directory(tmp_path):
    cfg = validate(tiny(), "test config")
    runs = [start_run(cfg, tmp_path) for _ in range(20)]  # well within one second
    assert len(set(runs)) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(r.name for r in runs)
    for run in runs:
        assert run.name.startswith("tiny-")
        assert (run / "config.yaml").is_file() and (run / "meta.json").is_file()


def test_two_trainings_with_the_same_name_back_to_back(tmp_path):
    first = train_config(tiny(), tmp_path)
    second = train_config(tiny(), tmp_path)
    assert first != second
    for run in (first, second):
        assert json.loads((run / "meta.json").read_text())["status"] == "completed"
        assert len(read_jsonl(run / "metrics.jsonl")) == 3  # neither appended to the other


# ---- every shipped config -------------------------------------------------------------------


def test_there_are_shipped_configs():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_validates(runner, path):
    result = runner.invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_trains(runner, tmp_path, path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "--config", str(path), "--runs-dir", str(runs), *FEW_STEPS])
    assert result.exit_code == 0, result.output
    (run,) = list(runs.iterdir())
    cfg = load_config(path)
    assert run.name.startswith(f"{cfg.name}-")
    assert json.loads((run / "meta.json").read_text())["status"] == "completed"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2
    assert (summary["model"], summary["task"]) == (cfg.model.name, cfg.task.name)
    buckets = TASKS[cfg.task.name].buckets
    assert [k for k in summary if k.startswith("accuracy_by_")] == ([f"accuracy_by_{buckets.name}"] if buckets else [])
    assert len(read_jsonl(run / "metrics.jsonl")) == 2
    assert len(read_jsonl(run / "samples.jsonl")) == 1
