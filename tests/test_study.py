"""The compare study: expansion, validation, the study directory, resume, failures, the report,
and every launcher giving the local launcher's results."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import yaml
from helpers import PNG, SMOKE, heavy_imports, result_figures, results, runs_by_name

from barkbench.cli import app
from barkbench.errors import BarkError
from barkbench.rundir import read_jsonl
from barkbench.study import findings, outputs, plan, report_file, sentences
from barkbench.study.launch import LAUNCHERS, launcher, missing, run_study
from barkbench.tasks import TASKS

loop = importlib.import_module("barkbench.train")  # the module: barkbench.train is the Python API's function

# A few steps of the tiniest models: every run of a study here trains in well under a second.
FAST = {
    "task": {"name": "echo", "message_length": 2, "min_gap": 0, "max_gap": 6, "train_size": 64, "val_size": 32},
    "model": {"embedding_dim": 8, "hidden_size": 8, "layers": 1, "heads": 2, "context_length": 16},
    "train": {"steps": 4, "batch_size": 8, "eval_every": 2, "eval_batch_size": 32},
    "sample": {"num_samples": 1, "max_new_tokens": 4},
}


def study_config(**changes) -> dict:
    return {
        "name": "study",
        "base": yaml.safe_load(yaml.safe_dump(FAST)),
        "models": [{"name": "rnn"}, {"name": "gpt"}],
        "seeds": [0, 1],
        **changes,
    }


def start(write_config, tmp_path, data: dict, overrides=()) -> Path:
    return plan.start_study(write_config(data, "study.yaml"), list(overrides), tmp_path / "runs")


# ---- expansion and validation, nothing trained -------------------------------------------


def test_models_seeds_and_sweep_expand_to_every_combination(tmp_path):
    data = study_config(sweep={"task.max_gap": [4, 6], "train.lr": [0.01]})
    spec, combos = plan.plan(data, "study.yaml", tmp_path)
    assert len(combos) == 2 * 2 * 2
    assert [c["name"] for c in combos[:4]] == [
        "rnn-s0-max_gap4-lr0.01",
        "rnn-s0-max_gap6-lr0.01",
        "rnn-s1-max_gap4-lr0.01",
        "rnn-s1-max_gap6-lr0.01",
    ]
    seen = {(c["config"].model.name, c["seed"], c["config"].task.max_gap) for c in combos}
    assert seen == {(m, s, g) for m in ("rnn", "gpt") for s in (0, 1) for g in (4, 6)}
    for c in combos:
        assert c["config"].name == c["name"] and c["config"].seed == c["seed"]
        assert c["config"].train.lr == 0.01
        assert c["sweep"] == {"task.max_gap": c["config"].task.max_gap, "train.lr": 0.01}
    assert spec["base"] == FAST  # written inline, so study.yaml needs nothing else


def test_models_of_the_same_name_get_labels_that_tell_them_apart(tmp_path):
    models = [{"name": "rnn", "hidden_size": 4}, {"name": "rnn", "hidden_size": 8}, {"positional": "rope"}, {}]
    _, combos = plan.plan(study_config(models=models), "study.yaml", tmp_path)
    labels = ["rnn-hidden_size4", "rnn-hidden_size8", "gpt-positional_rope", "gpt"]
    assert list(dict.fromkeys(c["label"] for c in combos)) == labels
    assert {c["config"].model.hidden_size for c in combos if c["label"] == "rnn-hidden_size4"} == {4}


def lstm_rows(by_seed: list[list[float]], buckets: list[str], failed: int = 1, **extra) -> list[dict]:
    """Completed runs of one model with these test accuracies by distance (one list per seed), and failed ones."""
    rows = [
        {
            "name": f"lstm-s{seed}",
            "status": "completed",
            "label": "lstm",
            "model": "lstm",
            "seed": seed,
            "sweep": {},
            "tune": {},
            "selected": True,
            "params": 10,
            "test_accuracy_by_distance": dict(zip(buckets, acc)),
            **extra,
        }
        for seed, acc in enumerate(by_seed)
    ]
    return rows + [{**rows[0], "name": f"lstm-f{i}", "status": "failed", "seed": 9 + i} for i in range(failed)]


BUCKETS = ["8-15", "16-31", "32-63", "64-127", "128-255"]


def test_the_collapse_point_and_the_sentence_say_what_the_numbers_show():
    by_seed = [[0.99, 0.97, 0.62, 0.30, 0.26], [0.97, 0.97, 0.58, 0.32, 0.28], [0.98, 0.97, 0.60, 0.31, 0.27]]
    rows = lstm_rows(by_seed, BUCKETS)
    for row in rows[3:]:
        del row["test_accuracy_by_distance"]
    trained = {r["name"]: set(BUCKETS) for r in rows}
    (line,) = findings.trace(rows, trained, TASKS["echo"])
    assert (line["runs"], line["completed"], line["collapse"]) == (4, 3, "32-63")
    assert line["by_bucket"]["8-15"] == {"mean": pytest.approx(0.98), "std": pytest.approx(0.01)}
    assert line["params"] == {"mean": 10, "std": 0.0} and line["test_loss"] is None
    assert line["seed_collapse"] == {"0": "32-63", "1": "32-63", "2": "32-63"}
    assert sentences.describe(line, TASKS["echo"], {"kind": "mix"}, 0.25) == (
        "lstm holds 0.97 test accuracy or more up to distance 31 and falls below 0.9 at 32-63 (0.60); at 128-255 it "
        "is at 0.27, near chance (0.25); its 3 seeds fall below 0.9 at 32-63 (1 of its 4 runs did not complete; see "
        "the runs below)."
    )


@pytest.mark.parametrize(
    "value, said",
    [(0.27, ", near chance (0.25)"), (0.21, ", near chance (0.25)"), (0.0, ", below chance (0.25)"), (0.5, "")],
)
def test_a_figure_far_below_chance_is_said_to_be_below_it_not_near_it(value, said):
    assert sentences.near(value, 0.25) == said


def test_a_model_below_the_threshold_everywhere_did_not_learn_rather_than_collapsed():
    rows = lstm_rows([[0.31, 0.30, 0.27, 0.26, 0.25], [0.29, 0.28, 0.26, 0.25, 0.25]], BUCKETS, failed=0)
    (line,) = findings.trace(rows, {r["name"]: set(BUCKETS) for r in rows}, TASKS["echo"])
    sentence = sentences.describe(line, TASKS["echo"], {"kind": "mix"}, 0.25)
    assert sentence.startswith("lstm did not learn the task at this budget")
    assert "0.25 to 0.30" in sentence and "collapse" not in sentence
    assert line["learned"] is False and line["collapse"] is None  # no collapse bucket: it never was at 0.9
    findings_of = {"models": [line], "content": "barks"}
    (row,) = report_file.bucket_table(findings_of)[1]
    assert row[-2:] == ["did not learn", "did not learn"] and not any("8-15" == cell for cell in row[-2:])


def test_one_word_for_holding_everywhere_and_seeds_that_did_not_learn_are_said():
    held = [[0.99, 0.98, 0.97, 0.96, 0.95]] * 2
    rows = lstm_rows([*held, [0.85, 0.8, 0.3, 0.3, 0.3]], BUCKETS, failed=0)  # the mean falls at 32-63
    (line,) = findings.trace(rows, {r["name"]: set(BUCKETS) for r in rows}, TASKS["echo"])
    (row,) = report_file.bucket_table({"models": [line], "content": "barks"})[1]
    assert line["seed_learned"] == {"0": True, "1": True, "2": False}
    assert row[-2:] == ["32-63", "never; 1 seed did not learn"]
    assert sentences.seeds_say(line) == "; of its 3 seeds, 2 never fall below 0.9, 1 did not learn"


@pytest.mark.parametrize(
    "value, text", [(0.896, "0.896"), (0.8996, "0.8996"), (0.904, "0.90"), (0.95, "0.95"), (0.5, "0.50"), (1.0, "1.00")]
)
def test_no_figure_is_rounded_across_the_threshold(value, text):
    assert findings.shown(value) == text


def test_models_whose_seeds_collapse_at_overlapping_points_are_indistinguishable_not_ranked():
    def line(name, points, best=1.0):
        return {
            "name": name,
            "sweep": {},
            "seed_collapse": dict(enumerate(points)),
            "by_bucket": {"8-15": {"mean": best}},
        }

    lines = [
        line("rnn", ["16-31", "32-63"]),
        line("gpt", [None, None]),
        line("lstm", ["32-63", "64-127"]),
        line("gru", ["128-255", None]),
        line("unlearned", ["8-15", "8-15"], best=0.5),  # never at the threshold: no collapse point to rank
    ]
    sentence = sentences.compare(lines, BUCKETS)
    assert sentence == (
        "Ranked by where their seeds fall below 0.9 (later is better): gpt (never) and gru (128-255 to never) "
        "(indistinguishable) ahead of lstm (32-63 to 64-127) and rnn (16-31 to 32-63) (indistinguishable)."
    )


def test_selection_reads_validation_only_and_breaks_ties_by_validation_loss():
    def run(lr, seed, val_accuracy, val_loss, test_accuracy):
        return {"label": "rnn", "sweep": {}, "tune": {"train.lr": lr}, "seed": seed, "status": "completed"} | {
            "val_accuracy": val_accuracy,
            "val_loss": val_loss,
            "test_accuracy": test_accuracy,
        }

    # 0.01 is better on validation; a planted test split says 0.001 would have been: it must not matter
    rows = [run(0.001, s, 0.80, 0.5, 0.99) for s in (0, 1)] + [run(0.01, s, 0.90, 0.6, 0.10) for s in (0, 1)]
    (entry,) = findings.select(rows)
    assert [r["selected"] for r in rows] == [False, False, True, True]
    assert [c["selected"] for c in entry["candidates"]] == [False, True]
    # equal validation accuracy: the lower validation loss wins
    rows = [run(0.001, 0, 1.0, 0.05, 0.5), run(0.01, 0, 1.0, 0.01, 0.4)]
    findings.select(rows)
    assert [r["selected"] for r in rows] == [False, True]


def test_overrides_reach_every_run_and_model_entries_override_the_base_model(tmp_path, write_config):
    data = study_config(models=[{"name": "rnn", "hidden_size": 4}, {"name": "gpt"}], overrides={"train.lr": 0.02})
    base = write_config(data.pop("base"), "base.yaml")
    data["base"] = base.name  # a path, relative to the compare file
    study = start(write_config, tmp_path, data, ["train.steps=2", "model.layers=2"])
    combos = plan.load_study(study)
    assert len(combos) == 4
    for c in combos:
        cfg = c["config"]
        assert (cfg.train.steps, cfg.train.lr, cfg.model.layers) == (2, 0.02, 2)
        assert cfg.model.hidden_size == (4 if cfg.model.name == "rnn" else 8)
        assert cfg.model.embedding_dim == 8  # from the base's model section
    assert "train.steps=2" in (study / "study.yaml").read_text()  # says how it was run


def test_a_bad_compare_config_reports_every_problem_exits_2_and_writes_nothing(tmp_path, write_config, runner):
    data = study_config(seed=[0], models=[{"name": "rnn", "hiden_size": 4}, {"name": "gpt", "heads": 3}])
    data["base"]["train"]["stepz"] = 5
    path = write_config(data, "bad.yaml")
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--config", str(path), "--runs-dir", str(runs), "train.lr=-1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    for words in ("unknown key 'seed'", "'seeds'", "unknown key 'train.stepz'", "'train.steps'", "train.lr"):
        assert words in result.stderr, result.stderr
    assert not runs.exists()


def test_the_runs_are_checked_too_each_problem_once(tmp_path, write_config, runner):
    data = study_config(models=[{"name": "rnn", "hiden_size": 4}, {"name": "gpt", "heads": 3}])
    result = runner.invoke(app, ["compare", "--config", str(write_config(data)), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert result.stderr.count("model.hiden_size") == 1  # for rnn-s0 only, not again for rnn-s1
    assert "'model.hidden_size'" in result.stderr and "model.heads (3)" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"models": []}, ["models must list at least one model"]),
        ({"base": 3}, ["base must be the path of a training config"]),
        ({"base": "missing.yaml"}, ["missing.yaml", "does not exist"]),
        ({"sweep": {"task.max_gap": 4}}, ["sweep.task.max_gap must be a non-empty list"]),
        ({"sweep": {"seed": [1, 2]}}, ["sweep cannot set 'seed'"]),
        ({"seeds": [0, 0]}, ["repeats a seed"]),
        ({"name": "a/b"}, ["name ('a/b') must be a plain word"]),
    ],
)
def test_bad_compare_keys_are_plain_sentences(tmp_path, write_config, runner, changes, words):
    path = write_config(study_config(**changes))
    result = runner.invoke(app, ["compare", "--config", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--launcher", "slurm"], ["'slurm' is not one of", "local"]),
        (["--address", "auto"], ["--address is not an option"]),
    ],
)
def test_a_bad_launcher_or_launcher_option_is_refused_before_anything_is_written(tmp_path, runner, args, words):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--config", str(SMOKE), "--runs-dir", str(runs), *args])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.stderr
    assert not runs.exists()


def test_a_launcher_whose_extra_is_not_installed_is_refused_before_anything_is_written(tmp_path, runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["compare", "--config", str(SMOKE), "--runs-dir", str(runs), "--launcher", "ray"])
    assert result.exit_code == 2, result.output
    assert "--launcher ray needs ray, which is not installed; pip install 'barkbench[ray]'" in result.stderr
    assert "Traceback" not in result.output and not runs.exists()


def test_resume_needs_a_study_directory(tmp_path, runner):
    result = runner.invoke(app, ["compare", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "no study.yaml" in result.stderr
    result = runner.invoke(app, ["compare", "--resume", str(tmp_path), "--config", str(SMOKE)])
    assert result.exit_code == 2 and "drop --config" in result.stderr


# ---- a study end to end --------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, runner):
    """The shipped smoke study through the CLI, cut to a few steps, trained in this process."""
    runs = tmp_path_factory.mktemp("smoke") / "runs"
    args = ["compare", "--config", str(SMOKE), "--runs-dir", str(runs), "--jobs", "1"]
    args += ["train.steps=3", "train.eval_every=3", "task.train_size=64", "task.val_size=32", "sample.num_samples=1"]
    result = runner.invoke(app, args)
    (study,) = runs.iterdir()
    return {"result": result, "runs": runs, "study": study}


def test_the_smoke_study_writes_a_study_directory_and_prints_the_table(smoke):
    result, study = smoke["result"], smoke["study"]
    assert result.exit_code == 0, result.output
    assert study.name.startswith("smoke-")
    assert {p.name for p in study.iterdir() if p.is_file()} == {
        "study.yaml",
        "results.json",
        "report.md",
        "collapse.png",
        "curves.png",
    }
    assert sorted(runs_by_name(study)) == ["gpt-s0", "gpt-s1", "rnn-s0", "rnn-s1"]
    for line in ("accuracy of the answer's barks by distance", "collapse", "rnn", "gpt"):
        assert line in result.stdout
    report = (study / "report.md").read_text()
    assert (
        "| model | runs | params | state bytes | loss | excess loss | acc (barks) | stop acc | exact match |" in report
    )
    assert report.count("\n- rnn ") == 1 and report.count("\n- gpt ") == 1  # a sentence per model
    assert "4 runs: 2 model entries x 2 seeds (0, 1); 4 completed" in report
    assert (study / "collapse.png").read_bytes()[:8] == PNG


def test_results_rows_match_the_run_directories(smoke):
    study = smoke["study"]
    rows = results(study)["runs"]
    assert len(rows) == 4
    for row in rows:
        run = study / row["run"]
        summary = json.loads((run / "summary.json").read_text())
        assert row["name"] == yaml.safe_load((run / "config.yaml").read_text())["name"]
        assert (row["model"], row["seed"], row["status"]) == (summary["model"], summary["seed"], "completed")
        for key in ("params", "state_bytes", "val_loss", "val_accuracy", "excess_loss", "accuracy_by_distance"):
            assert row[key] == summary[key]
    models = results(study)["models"]
    assert [m["name"] for m in models] == ["rnn", "gpt"]
    accuracy = [r["test_bark_accuracy"] for r in rows if r["model"] == "gpt"]
    assert models[1]["test_bark_accuracy"]["mean"] == pytest.approx(sum(accuracy) / 2)
    assert all(r["selected"] for r in rows)  # nothing tuned: every run is the chosen one


def test_report_re_renders_without_training(smoke, runner):
    study = smoke["study"]
    before = results(study)
    for name in ("results.json", "report.md", "collapse.png", "curves.png"):
        (study / name).unlink()
    result = runner.invoke(app, ["report", str(study)])
    assert result.exit_code == 0, result.output
    assert results(study) == before
    assert (study / "collapse.png").read_bytes()[:8] == PNG and (study / "report.md").exists()


def test_report_of_an_unchanged_study_reads_its_findings_back_and_draws_nothing(smoke, runner):
    study = smoke["study"]
    first = runner.invoke(app, ["report", str(study), "--force"])
    written = {p.name: p.stat().st_mtime_ns for p in study.iterdir() if p.is_file()}
    assert heavy_imports("report", study) == set()  # no config validation, no drawing
    again = runner.invoke(app, ["report", str(study)])
    assert again.exit_code == 0
    assert again.stdout.splitlines()[:-1] == first.stdout.splitlines()[:-1]  # the same tables and sentences
    assert "no run changed since" in again.stdout and "--force" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in study.iterdir() if p.is_file()} == written
    # A run whose figures change after the report: the next report gathers and draws again.
    summary = runs_by_name(study)["gpt-s0"] / "summary.json"
    figures = json.loads(summary.read_text())
    summary.write_text(json.dumps({**figures, "test_bark_accuracy": 0.125}))
    try:
        changed = runner.invoke(app, ["report", str(study)])
        assert changed.exit_code == 0 and changed.stdout != first.stdout
        assert (study / "curves.png").stat().st_mtime_ns > written["curves.png"]
        assert next(r for r in results(study)["runs"] if r["name"] == "gpt-s0")["test_bark_accuracy"] == 0.125
    finally:
        summary.write_text(json.dumps(figures))
        runner.invoke(app, ["report", str(study)])


def test_runs_lists_the_runs_inside_the_study(smoke, runner):
    result = runner.invoke(app, ["runs", str(smoke["runs"])])
    assert result.exit_code == 0
    assert result.stdout.count("completed") == 4 and result.stdout.count("smoke-") == 4


# ---- failures and resume -------------------------------------------------------------------


def test_a_failing_run_is_recorded_and_the_others_go_on_then_resume_finishes_it(
    tmp_path, write_config, runner, monkeypatch
):
    real_train = loop.train  # what study/job.py calls (imported there when a job runs)

    def gpt_breaks_at_step_3(run, cfg, resume=False, on_step=None, stop_requested=None):
        def report_then_break(fields):
            if cfg.model.name == "gpt" and fields["step"] == 3:
                raise RuntimeError("the gpu caught fire")

        return real_train(run, cfg, resume=resume, on_step=report_then_break)

    monkeypatch.setattr(loop, "train", gpt_breaks_at_step_3)
    path = write_config(study_config())
    args = ["compare", "--config", str(path), "--runs-dir", str(tmp_path / "runs"), "--jobs", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "2 of 4 runs did not complete (gpt-s0, gpt-s1)" in result.stderr
    (study,) = (tmp_path / "runs").iterdir()
    rows = {r["name"]: r for r in results(study)["runs"]}
    assert [rows[n]["status"] for n in ("rnn-s0", "rnn-s1", "gpt-s0", "gpt-s1")] == ["completed"] * 2 + ["failed"] * 2
    assert "the gpu caught fire" in rows["gpt-s0"]["message"]
    assert "the gpu caught fire" in (study / "report.md").read_text()

    runs = runs_by_name(study)
    kept = {n: (runs[n] / "metrics.jsonl").stat().st_mtime_ns for n in ("rnn-s0", "rnn-s1")}
    monkeypatch.setattr(loop, "train", real_train)
    result = runner.invoke(app, ["compare", "--resume", str(study), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "2 runs to train (2 completed runs kept)" in result.stderr
    assert runs_by_name(study) == runs  # the same directories, none added
    assert {n: (runs[n] / "metrics.jsonl").stat().st_mtime_ns for n in kept} == kept  # not retrained
    assert all(r["status"] == "completed" for r in results(study)["runs"])
    # the failed runs went on from their checkpoint at step 2, repeating no step (4 steps: eval_every
    # is lowered to 1, so that the curves have as many points as they can)
    assert [row["step"] for row in read_jsonl(runs["gpt-s0"] / "metrics.jsonl")] == [1, 2, 3, 4]


def test_a_resumed_study_with_nothing_left_to_do_trains_nothing(smoke, runner):
    study = smoke["study"]
    before = {n: (p / "meta.json").stat().st_mtime_ns for n, p in runs_by_name(study).items()}
    result = runner.invoke(app, ["compare", "--resume", str(study)])
    assert result.exit_code == 0, result.output
    assert {n: (p / "meta.json").stat().st_mtime_ns for n, p in runs_by_name(study).items()} == before


def test_a_run_still_running_is_not_touched(tmp_path, write_config):
    study = start(write_config, tmp_path, study_config(models=[{"name": "rnn"}], seeds=[0]))
    run_study(study, launcher("local", jobs=1))
    (run,) = runs_by_name(study).values()
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "status": "running", "pid": 1, "host": meta["host"]}))
    with pytest.raises(BarkError, match="still running"):
        run_study(study, launcher("local", jobs=1))


# ---- worker processes and the cycle plot ---------------------------------------------------


@pytest.mark.slow
def test_parallel_jobs_train_every_run_in_worker_processes(tmp_path, write_config):
    study = start(write_config, tmp_path, study_config(seeds=[0]))
    assert run_study(study, launcher("local", jobs=2)) is None
    report = outputs.write_outputs(study)
    assert [r["status"] for r in report["rows"]] == ["completed", "completed"]
    pids = {json.loads((p / "meta.json").read_text())["pid"] for p in runs_by_name(study).values()}
    assert len(pids) == 2 and not pids & {__import__("os").getpid()}


def test_a_cycle_study_plots_stop_rate_and_cycle_adherence(tmp_path, write_config):
    base = yaml.safe_load(yaml.safe_dump(FAST))
    base["task"] = {"name": "cycle", "min_barks": 2, "max_barks": 6, "train_size": 64, "val_size": 32}
    base["sample"] = {"num_samples": 2, "max_new_tokens": 8}
    study = start(write_config, tmp_path, study_config(base=base, seeds=[0]))
    run_study(study, launcher("local", jobs=1))
    report = outputs.write_outputs(study)
    assert all(0 <= g["stop_rate"]["mean"] <= 1 and "cycle" in g["sentence"] for g in report["lines"])
    assert "stop rate" in report["tables"][0][1] and "collapse" not in report["tables"][0][1]
    assert (study / "collapse.png").read_bytes()[:8] == PNG


# ---- every launcher: the local launcher's results ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_every_launcher_gives_the_results_of_the_local_launcher(tmp_path, write_config, runner, launcher):
    if problem := missing(launcher):
        pytest.skip(problem)
    figures = {}
    for name, options in {
        "reference": ["--launcher", "local", "--jobs", "1"],
        "other": ["--launcher", launcher],
    }.items():
        args = ["compare", "--config", str(SMOKE), "--runs-dir", str(tmp_path / name), *options]
        args += [
            "train.steps=10",
            "train.eval_every=2",
            "train.stop_at=0.2",  # runs stop early: where they stop is the same too
            "task.train_size=64",
            "task.val_size=32",
            "sample.num_samples=1",
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        (study,) = (tmp_path / name).iterdir()
        figures[name] = result_figures(study)
    assert figures["other"] == figures["reference"]
    assert len(figures["reference"]) == 4
    assert any(row["stopped_early"] for row in figures["reference"].values())


@pytest.mark.slow
def test_figures_do_not_depend_on_how_many_jobs_train_at_once(tmp_path, runner):
    """Two runs at once in worker processes (--jobs 2, one thread each on two cores) give every
    figure that one at a time in this process gives; each run records the threads it trained with."""
    figures = {}
    for jobs in ("1", "2"):
        runs = tmp_path / f"jobs{jobs}"
        args = ["compare", "--config", str(SMOKE), "--runs-dir", str(runs), "--jobs", jobs, "threads=1"]
        args += ["train.steps=10", "train.eval_every=2", "task.train_size=64", "sample.num_samples=1"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"training {jobs} at a time" in result.stderr
        (study,) = runs.iterdir()
        figures[jobs] = result_figures(study)
        recorded = {json.loads((p / "meta.json").read_text())["threads"] for p in study.iterdir() if p.is_dir()}
        assert recorded == {1}
    assert figures["1"] == figures["2"]
    assert figures["1"]["rnn-s0"]["test_loss"] != figures["1"]["rnn-s1"]["test_loss"]  # the figures are the runs' own


# ---- tuning, protocols and the memory map ---------------------------------------------------


def test_tuning_chooses_on_validation_and_a_planted_test_split_changes_nothing(tmp_path, write_config, runner):
    study = start(write_config, tmp_path, study_config(seeds=[0], tune={"train.lr": [0.001, 0.05]}))
    run_study(study, launcher("local", jobs=1))
    first = outputs.write_outputs(study)["findings"]
    rows = {r["name"]: r for r in first["runs"]}
    assert sorted(rows) == ["gpt-s0-lr0.001", "gpt-s0-lr0.05", "rnn-s0-lr0.001", "rnn-s0-lr0.05"]
    assert all(r["tune"] == {"train.lr": float(r["name"].rsplit("lr", 1)[1])} for r in rows.values())
    chosen = {r["name"] for r in rows.values() if r["selected"]}
    assert len(chosen) == 2 and {name.split("-")[0] for name in chosen} == {"rnn", "gpt"}
    # Plant a test split that says the other learning rate was far better: nothing may change.
    for name, run in runs_by_name(study).items():
        summary = json.loads((run / "summary.json").read_text())
        planted = 0.0 if name in chosen else 1.0
        summary.update(test_accuracy=planted, test_loss=1 - planted, test_bark_accuracy=planted)
        (run / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["report", str(study)])
    assert result.exit_code == 0, result.output
    again = results(study)
    assert {r["name"] for r in again["runs"] if r["selected"]} == chosen
    assert all(line["test_bark_accuracy"]["mean"] == 0.0 for line in again["models"])  # reported on test
    report = (study / "report.md").read_text()
    assert (
        "## Tuning" in report
        and "| model | cell | value | runs | val acc (all) | val loss | test acc (all) | chosen |" in report
    )
    assert "train.lr was tuned" in report


def test_a_fixed_distance_sweep_joins_into_one_line_and_a_capacity_sweep_draws_a_memory_map(tmp_path, write_config):
    sweep = {"task.message_length": [1, 2], "task.min_gap,task.max_gap": [[0, 0], [6, 6]]}
    study = start(write_config, tmp_path, study_config(seeds=[0], sweep=sweep))
    run_study(study, launcher("local", jobs=1))
    report = outputs.write_outputs(study)
    assert report["findings"]["protocol"]["kind"] == "fixed"
    lines = report["lines"]
    assert [line["name"] for line in lines] == [
        "rnn message_length=1",
        "rnn message_length=2",
        "gpt message_length=1",
        "gpt message_length=2",
    ]
    # each line joins its two fixed distances: m + 0 + 2 and m + 6 + 2
    assert list(lines[0]["by_bucket"]) == ["2-3", "8-15"] and list(lines[1]["by_bucket"]) == ["4-7", "8-15"]
    assert (study / "memory_map.png").read_bytes()[:8] == PNG
    assert "![memory_map.png](memory_map.png)" in (study / "report.md").read_text()


def test_a_study_tested_beyond_its_training_says_so_and_marks_the_buckets(tmp_path, write_config):
    base = yaml.safe_load(yaml.safe_dump(FAST))
    base["eval"] = {"max_gap": 14}
    base["model"]["context_length"] = 24
    study = start(write_config, tmp_path, study_config(base=base, seeds=[0]))
    run_study(study, launcher("local", jobs=1))
    report = outputs.write_outputs(study)
    protocol = report["findings"]["protocol"]
    assert protocol == {"kind": "beyond", "trained": [4, 10], "tested": [4, 18]}
    (line,) = [line for line in report["lines"] if line["label"] == "gpt"]
    assert line["trained"] == ["4-7", "8-15"] and "16-31" in line["by_bucket"]
    text = (study / "report.md").read_text()
    assert "were tested on distances 4 to 18" in text and "A * marks a bucket the model never trained on" in text


# ---- smaller things: base by name, validate of a study, --jobs -----------------------------------


def test_base_takes_a_shipped_config_s_bare_name_as_config_does(tmp_path, write_config):
    spec, combos = plan.plan({"base": "echo_gpt", "models": [{"name": "rnn"}]}, "study.yaml", tmp_path)
    assert spec["base"] == yaml.safe_load((Path(plan.__file__).parent.parent / "configs" / "echo_gpt.yaml").read_text())
    assert combos[0]["config"].task.name == "echo"
    (tmp_path / "echo_gpt.yaml").write_text(yaml.safe_dump(FAST))  # a file beside the compare config comes first
    spec, _ = plan.plan({"base": "echo_gpt.yaml", "models": [{"name": "rnn"}]}, "study.yaml", tmp_path)
    assert spec["base"]["train"]["steps"] == 4


def test_validate_checks_a_study_and_lists_the_runs_it_would_train_and_trains_none(
    tmp_path, write_config, runner, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = write_config(study_config(sweep={"task.max_gap": [4, 6]}, tune={"train.lr": [0.01, 0.02]}), "study.yaml")
    result = runner.invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "study: 16 runs (2 model entries x 2 seeds x 2 max_gap values (swept) x 2 lr values (tuned))" in " ".join(
        result.stdout.split()
    )
    _, combos = plan.plan(yaml.safe_load(path.read_text()), str(path), tmp_path)
    for combo in combos:
        assert combo["name"] in result.stdout
    assert not (tmp_path / "runs").exists()
    bad = runner.invoke(app, ["validate", "--config", str(path), "model.hidden_size=-1"])
    assert bad.exit_code == 2 and "override 'model.hidden_size=-1'" in bad.stderr


def test_jobs_beyond_what_the_cores_can_train_are_capped_with_a_line(tmp_path, write_config, runner, monkeypatch):
    from barkbench.study import local

    monkeypatch.setattr(local, "cores", lambda: 1)
    path = write_config(study_config(models=[{"name": "rnn"}]))
    result = runner.invoke(
        app, ["compare", "--config", str(path), "--runs-dir", str(tmp_path / "runs"), "--jobs", "10000"]
    )
    assert result.exit_code == 0, result.output
    assert "--jobs 10000 is more than the 1 cores here can train at threads=1; training 1 at a time" in result.stderr
    assert "training 1 at a time\n" in result.stderr


# ---- the recall-memory frontier -------------------------------------------------------------


def frontier_line(
    model: str, label: str, state: int, at_length: int, accuracy: float, std: float = 0.0, sweep: dict | None = None
) -> dict:
    return {
        "model": model,
        "label": label,
        "name": label,
        "sweep": sweep or {},
        "params": {"mean": 100.0, "std": 0.0},
        "state_bytes": {"mean": state, "std": 0.0},
        "sequence_state_bytes": {"mean": at_length, "std": 0.0},
        "test_bark_accuracy": {"mean": accuracy, "std": std},
    }


def test_the_frontier_is_a_point_per_line_by_family_then_state_at_the_longest_sequence():
    lines = [
        frontier_line("gpt", "gpt", 65536, 4096, 1.0),  # a cache: smaller at the study's sequence length
        frontier_line("gru", "gru-hidden_size64", 256, 256, 0.25),
        frontier_line("gru", "gru-hidden_size16", 64, 64, 0.22, 0.01),
    ]
    points = findings.frontier(lines)
    assert [(p["label"], p["state_bytes"], p["cache"]) for p in points] == [
        ("gpt", 4096, True),
        ("gru-hidden_size16", 64, False),
        ("gru-hidden_size64", 256, False),
    ]
    assert findings.frontier(lines[:2]) is None  # two state sizes are no frontier
    said = sentences.frontier_said(points, "values")
    assert "gpt 1.00 with 4 KB of cache" in said and "gru 0.22 ± 0.01 with 64 bytes and 0.25 with 256 bytes" in said
    assert "With about" not in said  # one fixed-state family: nothing to set side by side


MEMORY_MAP_CELLS = [  # (model, state, cache at the longest sequence, accuracy at message_length 2, at 4)
    ("rnn", 256, 256, 0.58, 0.31),
    ("lstm", 512, 512, 0.95, 0.84),
    ("gru", 256, 256, 0.97, 0.98),
    ("gpt", 294912, 270336, 0.79, 0.77),
]


def memory_map_lines() -> list[dict]:
    """memory_map's lines: a line per model and swept message length (the GPT's cache longer at 4)."""
    lines = []
    for model, state, cache, *accuracies in MEMORY_MAP_CELLS:
        for i, (length, accuracy) in enumerate(zip((2, 4), accuracies)):
            sweep = {"task.message_length": length}
            at_length = cache + 4096 * i if cache != state else state  # a cache grows with the message
            line = frontier_line(model, f"{model} message_length={length}", state, at_length, accuracy, 0.0, sweep)
            lines.append({**line, "seeds": [0]})
    return lines


def test_a_frontier_over_a_swept_task_setting_keeps_each_cell_apart():
    """memory_map sweeps the message's length, not a model's capacity: the frontier names the cell
    of every point, and sets families side by side within one cell, never one cell's rnn beside
    another's gru."""
    said = sentences.frontier_said(findings.frontier(memory_map_lines()), "barks")
    assert "rnn 0.58 with 256 bytes at message_length=2 and 0.31 with 256 bytes at message_length=4" in said
    assert said.endswith(
        "At message_length=2, with about 256 bytes of state per sequence, gru reaches 0.97, lstm reaches 0.95, "
        "rnn reaches 0.58; gpt 0.79, with a cache of 264 KB."
    )


def test_a_swept_model_setting_is_a_capacity_the_frontier_runs_through():
    """Sweeping model.hidden_size is how one builds a frontier: its values are a family's line, set
    side by side with the others at matched state, with no cell named."""
    lines = [
        {**frontier_line(m, f"{m} hidden_size={h}", b, b, a, 0.0, {"model.hidden_size": h}), "seeds": [0]}
        for m, h, b, a in (("rnn", 16, 64, 0.3), ("rnn", 32, 128, 0.5), ("lstm", 16, 128, 0.6), ("lstm", 32, 256, 0.9))
    ]
    said = sentences.frontier_said(findings.frontier(lines), "barks")
    assert "rnn 0.30 with 64 bytes and 0.50 with 128 bytes; lstm 0.60 with 128 bytes and 0.90 with 256 bytes" in said
    assert (
        "hidden_size" not in said
        and "With about 128 bytes of state per sequence, lstm reaches 0.60, rnn reaches 0.50" in said
    )


def test_a_study_over_three_state_sizes_draws_its_frontier(tmp_path, write_config):
    models = [{"name": "rnn", "hidden_size": h} for h in (4, 8, 16)] + [{"name": "gpt"}]
    study = start(write_config, tmp_path, study_config(seeds=[0], models=models))
    run_study(study, launcher("local", jobs=1))
    report = outputs.write_outputs(study)
    points = report["findings"]["frontier"]
    assert [(p["label"], p["state_bytes"], p["cache"]) for p in points] == [
        ("rnn-hidden_size4", 16, False),
        ("rnn-hidden_size8", 32, False),
        ("rnn-hidden_size16", 64, False),
        ("gpt", 1 * 2 * (2 * 2 + 6 + 4) * 8 * 4, True),  # its cache at the longest sequence: echo's 2m + 6 + 4 tokens
    ]
    for point, line in zip(points, report["lines"]):
        assert point["accuracy"] == line["test_bark_accuracy"] and point["params"] == line["params"]["mean"]
    assert (study / "frontier.png").read_bytes()[:8] == PNG
    text = (study / "report.md").read_text()
    assert "![frontier.png](frontier.png)" in text and report["findings"]["frontier_said"] in text
    # one seed: no spread to show anywhere, and the count says what it multiplies
    assert "±" not in text and "4 runs: 4 model entries x 1 seed (0); 4 completed" in text
    assert "mean ± std" not in report["tables"][0][0]
