"""Damaged run and study directories: every command that reads one (runs, generate, inspect,
train --resume, report, compare --resume), on each damage (a torn metrics.jsonl line, a torn
meta.json, summary.json or results.json, a truncated checkpoint with and without an intact one
before it). A damaged run is said, by name, with what mends it; the runs beside it go on; and
the advice, followed, works: resuming mends the run, to the figures and weights it had."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import SHORT, cli, meta, metrics, only_run, results, runs_by_name, summary
from safetensors.torch import load_file

from barkbench.rundir import list_checkpoints

TIMING = {"tokens_per_second", "wall_seconds"}


def cut(path: Path, keep: float = 0.5) -> None:
    """Cut a file short, as a disk that filled or a copy that stopped would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def torn_last_line(run: Path) -> None:
    """What a crash while appending leaves: half a line, no newline; the run left `running`."""
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 31, "train_loss": 1.2, "val_lo')
    set_meta(run, status="running", host="elsewhere.invalid", pid=1, heartbeat=0)


def torn_line(run: Path) -> None:
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][: len(lines[1]) // 2] + "\n"
    (run / "metrics.jsonl").write_text("".join(lines))


def last_checkpoint_cut(run: Path) -> None:
    cut(list_checkpoints(run)[-1] / "model.safetensors")


def only_checkpoint_cut(run: Path) -> None:
    for checkpoint in list_checkpoints(run)[:-1]:
        shutil.rmtree(checkpoint)
    cut(list_checkpoints(run)[-1] / "trainer.safetensors")


DAMAGES = {
    "metrics-torn-last-line": torn_last_line,
    "metrics-torn-line": torn_line,
    "meta-torn": lambda run: cut(run / "meta.json"),
    "summary-torn": lambda run: cut(run / "summary.json"),
    "checkpoint-cut": last_checkpoint_cut,
    "only-checkpoint-cut": only_checkpoint_cut,
}
# What `runs` shows of the damaged run, and what each damage is said as.
SAID = {
    "metrics-torn-last-line": ("dead", None),
    "metrics-torn-line": ("damaged", "metrics.jsonl line 2 is not valid JSON"),
    "meta-torn": ("damaged", "meta.json is not valid JSON"),
    "summary-torn": ("damaged", "summary.json is not valid JSON"),
    "checkpoint-cut": ("damaged", "checkpoints/step-0000030/model.safetensors is not an intact safetensors file"),
    "only-checkpoint-cut": ("damaged", "checkpoints/step-0000030/trainer.safetensors is not an intact safetensors"),
}


def set_meta(run: Path, **fields) -> None:
    (run / "meta.json").write_text(json.dumps({**meta(run), **fields}))


def advice(text: str) -> list[list[str]]:
    """The barkbench commands a message gives in backticks, as argument lists."""
    return [shlex.split(command)[1:] for command in re.findall(r"`(barkbench [^`]+)`", text)]


def weights(run: Path) -> dict:
    return load_file(list_checkpoints(run)[-1] / "model.safetensors")


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def figures_of(run: Path) -> dict:
    return {k: v for k, v in summary(run).items() if k not in TIMING | {"name"}}


def new_run(runs: Path, before: set) -> Path:
    """The one run directory in runs that is not among `before`."""
    (run,) = set(runs.iterdir()) - before
    return run


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """One tiny completed run (30 steps, checkpoints at 10, 20 and 30), trained once."""
    root = tmp_path_factory.mktemp("damage")
    config = root / "short.yaml"
    config.write_text(yaml.safe_dump(SHORT))
    result = cli("train", "--config", config, "--runs-dir", root / "runs")
    assert result.exit_code == 0, result.output
    return only_run(root / "runs")


@pytest.fixture
def runs(tmp_path, original, monkeypatch) -> Path:
    """runs/ holding a sound copy of the run ("sound") and one to damage ("hurt")."""
    monkeypatch.chdir(tmp_path)
    for name in ("sound", "hurt"):
        shutil.copytree(original, tmp_path / "runs" / name)
    return tmp_path / "runs"


# ---- runs --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGES)
def test_runs_lists_every_run_and_marks_the_damaged_one_with_what_mends_it(runs, damage):
    DAMAGES[damage](runs / "hurt")
    result = cli("runs", runs)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    assert set(rows) == {"sound", "hurt"}
    assert "completed" in rows["sound"]
    status, words = SAID[damage]
    assert status in rows["hurt"]
    if words is None:
        assert result.stderr == ""
    else:
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"{runs / 'hurt'} is damaged: {words}")
        remedy = "`barkbench train --config" if damage == "only-checkpoint-cut" else "`barkbench train --resume"
        assert remedy in line


# ---- generate and inspect ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["generate", "inspect"])
@pytest.mark.parametrize("damage", ["metrics-torn-line", "summary-torn"])
def test_generate_and_inspect_need_neither_metrics_nor_summary(runs, damage, command):
    DAMAGES[damage](runs / "hurt")
    result = cli(command, runs / "hurt", *(["-n", "1"] if command == "generate" else []))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["generate", "inspect"])
@pytest.mark.parametrize(
    "damage, code, words",
    [
        ("meta-torn", 2, "meta.json is not valid JSON (it breaks off or is garbled at line"),
        ("checkpoint-cut", 1, "trains it again from step 20, the intact checkpoint before it, to the same weights"),
        ("only-checkpoint-cut", 1, "and no older checkpoint is intact; `barkbench train --config"),
        ("metrics-torn-last-line", 2, "is dead, not completed; finish it with `barkbench train --resume"),
    ],
)
def test_generate_and_inspect_on_a_damaged_run_say_what_mends_it_and_it_does(
    runs, original, damage, code, words, command
):
    DAMAGES[damage](runs / "hurt")
    result = cli(command, runs / "hurt")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert words in line, line

    (fix,) = advice(line)  # the advice, followed
    before = set(runs.iterdir())
    followed = cli(*fix)
    assert followed.exit_code == 0, followed.output
    mended = runs / "hurt" if fix[:2] == ["train", "--resume"] else new_run(runs, before)
    assert meta(mended)["status"] == "completed"
    assert same_weights(weights(mended), weights(original))  # resumed, or trained again: the same run
    assert cli(command, mended).exit_code == 0


# ---- train --resume -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, said, start",
    [
        ("metrics-torn-last-line", "the last line of metrics.jsonl was cut off by a crash; dropped it", 30),
        ("metrics-torn-line", "metrics.jsonl line 2 is not valid JSON; dropped it", 30),
        ("meta-torn", "meta.json is not valid JSON (it breaks off or is garbled at line", 30),
        ("summary-torn", None, 30),
        ("checkpoint-cut", "is not an intact safetensors file", 20),
    ],
)
def test_resume_mends_a_damaged_run_and_ends_with_its_figures_and_weights(runs, original, damage, said, start):
    DAMAGES[damage](runs / "hurt")
    result = cli("train", "--resume", runs / "hurt")
    assert result.exit_code == 0, result.output
    if said:
        assert said in result.stderr
    assert f"resuming from step {start} of 30" in result.stderr  # the step it really resumes from
    run = runs / "hurt"
    assert meta(run)["status"] == "completed" and meta(run)["step"] == 30
    assert figures_of(run) == figures_of(original)
    assert same_weights(weights(run), weights(original))
    steps = [row["step"] for row in metrics(run)]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # no step twice, no torn line
    assert not (run / "metrics.jsonl").read_text().count("val_lo\n")
    assert cli("runs", runs).stderr == ""  # nothing damaged any more
    if damage == "checkpoint-cut":
        assert "set it aside as checkpoints/damaged-step-0000030, and the run resumes from step 20" in result.stderr
        assert (run / "checkpoints" / "damaged-step-0000030").is_dir()  # kept for whoever looks


def test_resume_with_no_intact_checkpoint_changes_nothing_and_says_what_trains_it_again(runs, original):
    only_checkpoint_cut(runs / "hurt")
    before = {p: p.stat().st_mtime_ns for p in (runs / "hurt").rglob("*")}
    result = cli("train", "--resume", runs / "hurt")
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert "trainer.safetensors is not an intact safetensors file" in line
    assert "no older checkpoint of" in line and "nothing to resume from" in line
    assert {p: p.stat().st_mtime_ns for p in (runs / "hurt").rglob("*")} == before
    (fix,) = advice(line)
    before = set(runs.iterdir())
    assert cli(*fix).exit_code == 0
    assert figures_of(new_run(runs, before)) == figures_of(original)


def test_resume_of_a_run_with_no_checkpoint_yet_trains_it_from_step_0(runs, original):
    run = runs / "hurt"
    shutil.rmtree(run / "checkpoints")
    (run / "summary.json").unlink()
    set_meta(run, status="interrupted", step=4)
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.output
    assert "has no checkpoint yet, so it trains from step 0" in result.stderr
    assert "resuming from step" not in result.stderr
    assert figures_of(run) == figures_of(original)


# ---- a study: report and compare --resume ---------------------------------------------------


STUDY = {"name": "hurt", "base": copy.deepcopy(SHORT), "models": [{"name": "gpt"}], "seeds": [0, 1]}


@pytest.fixture(scope="module")
def original_study(tmp_path_factory) -> Path:
    """A study of two tiny runs (gpt-s0, gpt-s1), trained once."""
    root = tmp_path_factory.mktemp("damaged-study")
    (root / "study.yaml").write_text(yaml.safe_dump(STUDY))
    result = cli("compare", "--config", root / "study.yaml", "--runs-dir", root / "runs", "--jobs", "1")
    assert result.exit_code == 0, result.output
    return only_run(root / "runs")


@pytest.fixture
def study(tmp_path, original_study, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return Path(shutil.copytree(original_study, tmp_path / "runs" / original_study.name))


def study_figures(study: Path) -> dict:
    return {r["name"]: {k: v for k, v in r.items() if k not in TIMING | {"run"}} for r in results(study)["runs"]}


@pytest.mark.parametrize("damage", [d for d in DAMAGES if d != "only-checkpoint-cut"])
def test_report_names_the_damaged_run_and_what_mends_it_and_compare_resume_mends_it(study, original_study, damage):
    hurt = runs_by_name(study)["gpt-s0"]
    DAMAGES[damage](hurt)
    reported = cli("report", study)
    assert reported.exit_code == 0, reported.output
    rows = {r["name"]: r for r in results(study)["runs"]}
    assert rows["gpt-s1"]["status"] == "completed"  # the rest goes on
    status, words = SAID[damage]
    assert rows["gpt-s0"]["status"] == status
    if words:
        (line,) = [line for line in reported.stderr.splitlines() if hurt.name in line]
        assert words in line and f"`barkbench compare --resume {study}` mends it" in line
        assert words in (study / "report.md").read_text()

    (fix,) = advice(f"`barkbench compare --resume {study}`") if words is None else advice(line)
    resumed = cli(*fix, "--jobs", "1")
    assert resumed.exit_code == 0, resumed.output
    assert study_figures(study) == study_figures(original_study)
    assert same_weights(weights(hurt), weights(runs_by_name(original_study)["gpt-s0"]))


def test_a_study_run_with_no_intact_checkpoint_fails_alone_and_the_advice_trains_it_again(study, original_study):
    hurt = runs_by_name(study)["gpt-s0"]
    only_checkpoint_cut(hurt)
    reported = cli("report", study)
    (line,) = [line for line in reported.stderr.splitlines() if hurt.name in line]
    assert f"delete {hurt}, then `barkbench compare --resume {study}` trains it again" in line

    resumed = cli("compare", "--resume", study, "--jobs", "1")  # not followed: the run cannot go on
    assert resumed.exit_code == 1, resumed.output
    assert "1 of 2 runs did not complete (gpt-s0); report.md says why and what to do\n" in resumed.stderr
    assert (
        f"delete {hurt}, then `barkbench compare --resume {study}` trains it again" in (study / "report.md").read_text()
    )
    shutil.rmtree(hurt)  # followed
    (fix,) = advice(line)
    assert cli(*fix, "--jobs", "1").exit_code == 0
    assert study_figures(study) == study_figures(original_study)


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_torn_results_json_is_written_again(study, original_study, command):
    cut(study / "results.json")
    args = ["report", study] if command == "report" else ["compare", "--resume", study, "--jobs", "1"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "results.json is not valid JSON" in result.stderr and "writing it again" in result.stderr
    assert study_figures(study) == study_figures(original_study)


def test_a_study_run_whose_config_yaml_is_torn_gets_it_again_from_study_yaml(study, original_study):
    hurt = runs_by_name(study)["gpt-s0"]
    cut(hurt / "config.yaml", 0.3)
    set_meta(hurt, status="interrupted")
    resumed = cli("compare", "--resume", study, "--jobs", "1")
    assert resumed.exit_code == 0, resumed.output
    assert "wrote it again from study.yaml" in resumed.stderr
    assert (hurt / "config.yaml").read_text() == (runs_by_name(original_study)["gpt-s0"] / "config.yaml").read_text()
    assert study_figures(study) == study_figures(original_study)
