"""barkbench from Python (barkbench/api.py): load_run and load_study on sound, unfinished and
damaged directories; Study.frame()'s columns against results.json; train and compare returning
what they made and raising BarkError kinds; and `import barkbench` staying light."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ENV, TINY, meta, metrics, only_run, results, summary, tiny

import barkbench
from barkbench.errors import BarkError, Damaged, Interrupted, RunFailed
from barkbench.rundir import read_jsonl, start_run
from barkbench.study.plan import study_runs

loop = importlib.import_module("barkbench.train")  # the module: barkbench.train is the API's function

FAST = {
    "task": {"name": "echo", "message_length": 2, "min_gap": 0, "max_gap": 6, "train_size": 64, "val_size": 32},
    "model": {"embedding_dim": 8, "hidden_size": 8, "layers": 1, "heads": 2, "context_length": 16},
    "train": {"steps": 4, "batch_size": 8, "eval_every": 2, "eval_batch_size": 32},
    "sample": {"num_samples": 1, "max_new_tokens": 4},
}
# Two models x a sweep of two keys set together x a tune of two values: 8 runs of 4 steps.
STUDY = {
    "name": "grid",
    "base": FAST,
    "models": [{"name": "rnn"}, {"name": "gpt"}],
    "seeds": [0],
    "sweep": {"task.min_gap,task.max_gap": [[0, 2], [4, 6]]},
    "tune": {"train.lr": [0.01, 0.003]},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return barkbench.compare(STUDY, runs_dir=tmp_path_factory.mktemp("api") / "runs", jobs=1)


# ---- the package ------------------------------------------------------------------------


def test_import_barkbench_is_light_and_names_the_api_lazily():
    code = (
        "import sys, barkbench\n"
        "print(*[m for m in ('torch', 'pydantic', 'matplotlib', 'barkbench.api') if m in sys.modules])\n"
        "print(barkbench.load_run.__module__, barkbench.compare.__module__, barkbench.BarkError.__module__)"
    )
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    heavy, names = lines.stdout.splitlines()
    assert heavy == ""
    assert names == "barkbench.api barkbench.api barkbench.errors"


def test_barkbench_train_stays_the_function_once_the_training_loop_is_imported():
    assert barkbench.train.__module__ == "barkbench.api"
    assert loop.__name__ == "barkbench.train" and callable(loop.train) and loop.train is not barkbench.train
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        barkbench.nothing  # noqa: B018


# ---- load_run -----------------------------------------------------------------------------


def test_load_run_reads_every_file_of_a_completed_run(tmp_path):
    made = barkbench.train(tiny(), runs_dir=tmp_path / "runs")
    run = barkbench.load_run(made.path)
    assert run == made
    assert run.path == only_run(tmp_path / "runs") and run.status == "completed"
    assert run.config == yaml.safe_load((run.path / "config.yaml").read_text())
    assert run.meta == meta(run.path) and run.summary == summary(run.path)
    assert run.metrics == metrics(run.path) and len(run.metrics) == TINY["train"]["steps"]
    assert run.samples == read_jsonl(run.path / "samples.jsonl") and len(run.samples) == 2
    assert barkbench.load_run("latest", runs_dir=tmp_path / "runs") == run
    assert barkbench.load_run("tiny", runs_dir=tmp_path / "runs") == run  # the start of its name


def test_a_run_that_has_not_completed_has_no_summary(tmp_path):
    from barkbench.config import validate

    run = barkbench.load_run(start_run(validate(tiny(), "test"), tmp_path))
    assert run.status == "running" and run.summary is None and run.metrics == [] and run.samples == []


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda run: (run / "meta.json").write_text('{"status": "compl'), "meta.json is not valid JSON"),
        (lambda run: (run / "summary.json").write_text("[1, 2]"), "summary.json holds a list, not a JSON object"),
        (lambda run: (run / "metrics.jsonl").write_text('{"step": 1}\n{"st\n{"step": 3}\n'), "metrics.jsonl line 2"),
    ],
)
def test_load_run_of_a_damaged_run_says_what_is_damaged_and_what_mends_it(tmp_path, damage, said):
    run = barkbench.train(tiny(), runs_dir=tmp_path / "runs").path
    damage(run)
    with pytest.raises(Damaged) as caught:
        barkbench.load_run(run)
    assert said in str(caught.value) and f"`barkbench train --resume {run}` mends it" in str(caught.value)


def test_load_run_of_what_is_not_a_run(tmp_path):
    with pytest.raises(BarkError, match="run directory '.*nowhere' does not exist"):
        barkbench.load_run(tmp_path / "nowhere")
    with pytest.raises(BarkError, match="is not a barkbench run directory .it has no config.yaml."):
        barkbench.load_run(tmp_path)


# ---- load_study and Study.frame() ---------------------------------------------------------


def test_compare_returns_the_study_it_wrote(study):
    assert study.written and study.results == results(study.path)
    # a line per model: a sweep of the keys that set the distances is the lines' x-axis
    assert study.lines == results(study.path)["models"] and [line["model"] for line in study.lines] == ["rnn", "gpt"]
    assert study.runs == results(study.path)["runs"] and len(study.runs) == 8
    assert study.frontier == []  # two state sizes: no frontier
    assert {r["status"] for r in study.runs} == {"completed"}


def test_frame_has_a_row_per_run_a_column_per_key_and_every_figure_named_by_its_split(study):
    frame = study.frame()
    assert len(frame) == 8 and list(frame["name"]) == [r["name"] for r in study.runs]
    for key in ("task.min_gap", "task.max_gap", "train.lr", "seed", "model", "selected", "status"):
        assert key in frame.columns, key
    assert "sweep" not in frame.columns and "tune" not in frame.columns
    assert not any(isinstance(v, (dict, list)) for v in frame.iloc[0])
    buckets = [c for c in frame.columns if c.startswith("test_accuracy_by_distance.")]
    assert buckets == sorted(buckets, key=lambda c: int(c.split(".")[1].split("-")[0])) and len(buckets) >= 2
    for (_, row), source in zip(frame.iterrows(), study.runs):
        assert [row["task.min_gap"], row["task.max_gap"]] == source["sweep"]["task.min_gap,task.max_gap"]
        assert row["train.lr"] == source["tune"]["train.lr"]
        # validation figures gain val_ (summary.json leaves them bare), test figures keep test_
        for bare in ("bark_accuracy", "stop_accuracy", "exact_match", "excess_loss"):
            assert row[f"val_{bare}"] == source[bare] and row[f"test_{bare}"] == source[f"test_{bare}"]
            assert bare not in frame.columns
        assert row["val_loss"] == source["val_loss"] and row["val_accuracy"] == source["val_accuracy"]
        for bucket, value in source["accuracy_by_distance"].items():
            assert row[f"val_accuracy_by_distance.{bucket}"] == value
        for bucket, value in source["test_exact_match_by_distance"].items():
            assert row[f"test_exact_match_by_distance.{bucket}"] == value
        assert row["floor_loss"] == source["floor_loss"]  # neither split's: as it is
    assert frame.groupby("model")["selected"].sum().to_dict() == {"gpt": 2, "rnn": 2}  # one lr per sweep cell


def test_frame_without_pandas_says_how_to_install_it(study, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an environment without it gives
    with pytest.raises(BarkError) as caught:
        study.frame()
    assert str(caught.value) == (
        "Study.frame() needs pandas, which is not installed; install it with pip install 'barkbench[pandas]'"
    )


def test_a_run_of_a_study_as_a_run(study):
    row = study.runs[3]
    run = study.run(row["name"])
    assert run.path == study.path / row["run"] and run.summary["test_loss"] == row["test_loss"]
    assert study.run(row["run"]) == run
    with pytest.raises(BarkError, match="has no run 'lstm-s0'; its runs are rnn-s0-"):
        study.run("lstm-s0")


def test_load_study_reads_back_an_unchanged_study_and_gathers_a_changed_one(study, capsys):
    again = barkbench.load_study(study.path)
    assert not again.written and again.results == study.results
    assert barkbench.load_study("grid", runs_dir=study.path.parent) == again
    (study.path / "results.json").write_text('{"runs": [')
    mended = barkbench.load_study(study.path)
    assert mended.written and mended.results["runs"] == study.results["runs"]
    assert "results.json is not valid JSON" in capsys.readouterr().err


def test_load_study_of_what_is_not_a_study(tmp_path):
    with pytest.raises(BarkError, match="is not a barkbench study directory .it has no study.yaml."):
        barkbench.load_study(tmp_path)


def test_a_damaged_run_of_a_study_is_a_row_that_says_what_mends_it(tmp_path):
    data = {**STUDY, "sweep": {}, "tune": {}, "models": [{"name": "rnn"}]}
    study = barkbench.compare(data, runs_dir=tmp_path / "runs", jobs=1)
    run = study_runs(study.path)["rnn-s0"]
    (run / "meta.json").write_text("{")
    (row,) = barkbench.load_study(study.path).runs
    assert row["status"] == "damaged" and "compare --resume" in row["message"]
    with pytest.raises(Damaged, match="meta.json is not valid JSON"):
        study.run("rnn-s0")


# ---- train and compare raise what the commands would say ----------------------------------


def test_train_raises_bad_config_as_a_bark_error_and_writes_nothing(tmp_path):
    with pytest.raises(BarkError, match="unknown key 'model.hiden_size'; did you mean 'model.hidden_size'"):
        barkbench.train(tiny(), overrides=["model.hiden_size=3"], runs_dir=tmp_path / "runs")
    with pytest.raises(BarkError, match="the config mapping is a compare config .* barkbench.compare"):
        barkbench.train(STUDY, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_train_a_shipped_config_by_name_then_on_to_more_steps(tmp_path):
    overrides = ["train.steps=4", "task.train_size=64", "task.val_size=16", "sample.num_samples=1"]
    run = barkbench.train("baby", overrides=overrides, runs_dir=tmp_path)
    assert run.summary["steps"] == 4 and run.config["train"]["steps"] == 4
    longer = barkbench.train(resume=run.path, overrides=["train.steps=6"], runs_dir=tmp_path)
    assert longer.path == run.path and longer.summary["steps"] == 6 and len(longer.metrics) > len(run.metrics)


def test_an_interrupted_train_raises_interrupted(tmp_path, monkeypatch):
    calls = []

    def stop_at_step_2():
        calls.append(1)
        return len(calls) >= 2

    real = loop.train
    monkeypatch.setattr(loop, "train", lambda *a, **k: real(*a, **{**k, "stop_requested": stop_at_step_2}))
    with pytest.raises(Interrupted, match="resume"):
        barkbench.train(tiny(), runs_dir=tmp_path)
    assert meta(only_run(tmp_path))["status"] == "interrupted"


def test_compare_with_runs_that_fail_raises_run_failed_carrying_the_study(tmp_path, monkeypatch):
    real = loop.train

    def gpt_breaks(run, cfg, **options):
        if cfg.model.name == "gpt":
            raise RuntimeError("the gpu caught fire")
        return real(run, cfg, **options)

    monkeypatch.setattr(loop, "train", gpt_breaks)
    data = {**STUDY, "sweep": {}, "tune": {}}
    with pytest.raises(RunFailed) as caught:
        barkbench.compare(data, runs_dir=tmp_path, jobs=1)
    study = caught.value.study
    assert str(caught.value).startswith("1 of 2 runs did not complete (gpt-s0)")
    assert {r["name"]: r["status"] for r in study.runs} == {"rnn-s0": "completed", "gpt-s0": "failed"}
    assert "the gpu caught fire" in study.run("gpt-s0").meta["message"]
    assert (study.path / "report.md").exists() and json.loads((study.path / "results.json").read_text())
    assert study.frame()["status"].tolist() == ["completed", "failed"]


def test_compare_refuses_bad_input_as_a_bark_error(tmp_path):
    with pytest.raises(BarkError, match="--launcher 'slurm' is not one of: local, ray"):
        barkbench.compare(STUDY, runs_dir=tmp_path, launcher="slurm")
    with pytest.raises(BarkError, match="give a config with --config FILE"):
        barkbench.compare()
    assert not any(tmp_path.iterdir())


# ---- the README's example -----------------------------------------------------------------


def readme_example(section: str) -> str:
    """The first ```python block of a section of README.md, as written."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return body.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    code = readme_example("From Python")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (From Python)", "exec"), {})
    printed = capsys.readouterr().out
    assert "does not divide model.embedding_dim" in printed  # the error it catches, printed
    assert "test_accuracy_by_distance." in printed and "val_bark_accuracy" in printed
    assert {p.name.split("-")[0] for p in (tmp_path / "runs").iterdir()} == {"baby", "smoke"}
