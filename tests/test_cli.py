"""The command line through typer's CliRunner: exit codes, messages on stderr, the run directory."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import typer
import yaml
from helpers import heavy_imports, tiny
from safetensors.torch import load_file

from barkbench import __version__, locate
from barkbench.cli import app
from barkbench.config import load_config, to_yaml
from barkbench.vocab import VOCAB

SUMMARY_KEYS = [
    "model",
    "task",
    "params",
    "state_bytes",
    "steps",
    "val_loss",
    "val_accuracy",
    "floor_loss",
    "excess_loss",
    "tokens_per_second",
    "wall_seconds",
]


def assert_clean_error(result, *words):
    """Exit status 2, a message on stderr naming `words`, nothing on stdout, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert result.stderr.strip()
    for word in words:
        assert word in result.stderr, f"{word!r} missing from:\n{result.stderr}"


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, runner):
    """One tiny run trained through the CLI, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("trained")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny()))
    runs = root / "runs"
    result = runner.invoke(app, ["train", "--config", str(config), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    (run,) = list(runs.iterdir())
    return {"result": result, "runs": runs, "run": run, "config": config}


# ---- validate -------------------------------------------------------------------------------


def test_validate_prints_the_resolved_config(runner, write_config):
    path = write_config(tiny())
    result = runner.invoke(app, ["validate", "--config", str(path), "model.embedding_dim=16", "train.steps=7"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    shown = yaml.safe_load(result.stdout)
    assert shown["model"]["embedding_dim"] == 16
    assert shown["model"]["ffn_dim"] == 64  # default filled in from the overridden width
    assert shown["train"]["steps"] == 7
    assert shown["task"]["min_barks"] == 2 and shown["task"]["max_barks"] == 10
    assert shown == load_config(path, ["model.embedding_dim=16", "train.steps=7"]).model_dump()


def test_validate_prints_yaml_exactly_even_with_long_lines(runner, write_config):
    """What validate prints is the resolved YAML itself, not rewrapped for an 80-column terminal,
    so `barkbench validate ... > resolved.yaml` keeps it as it is."""
    prompt = "User: " + "woof arf ruff grrr " * 10 + "speak Assistant:"
    data = tiny()
    data["model"]["context_length"] = 64
    data["sample"]["prompt"] = prompt
    path = write_config(data)
    result = runner.invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == to_yaml(load_config(path))


def test_validate_reports_every_problem_on_stderr(runner, write_config):
    data = tiny()
    data["model"]["hiden_size"] = 4
    data["train"]["steps"] = -1
    data["steps"] = 3
    result = runner.invoke(app, ["validate", "--config", str(write_config(data)), "task.name=parrot"])
    assert_clean_error(result, "4 problems", "model.hiden_size", "model.hidden_size", "train.steps", "-1", "parrot")


def test_validate_a_missing_file(runner, tmp_path):
    result = runner.invoke(app, ["validate", "--config", str(tmp_path / "nope.yaml")])
    assert_clean_error(result, "nope.yaml", "does not exist")


def test_validate_a_broken_yaml_file(runner, write_config):
    result = runner.invoke(app, ["validate", "--config", str(write_config("model: {name: gpt\n"))])
    assert_clean_error(result, "not valid YAML")


def test_validate_an_override_without_equals(runner, write_config):
    result = runner.invoke(app, ["validate", "--config", str(write_config(tiny())), "train.steps"])
    assert_clean_error(result, "'train.steps'", "KEY=VALUE")


# ---- train ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["unknown-key", "bad-value", "bad-override", "broken-yaml", "missing-file"],
)
def test_train_with_a_bad_config_writes_nothing(runner, write_config, tmp_path, case):
    data = tiny()
    overrides = []
    if case == "unknown-key":
        data["model"]["hiden_size"] = 4
    elif case == "bad-value":
        data["model"]["heads"] = 3
    elif case == "bad-override":
        overrides = ["train.steps.x=3"]
    path = write_config("task: [\n" if case == "broken-yaml" else data)
    if case == "missing-file":
        path = tmp_path / "nope.yaml"
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "--config", str(path), "--runs-dir", str(runs), *overrides])
    assert_clean_error(result)
    assert not runs.exists() or not any(runs.iterdir())


def test_train_without_config_or_resume(runner, tmp_path):
    result = runner.invoke(app, ["train", "--runs-dir", str(tmp_path / "runs")])
    assert_clean_error(result, "--config", "--resume")
    assert not (tmp_path / "runs").exists()


def test_train_reports_where_it_wrote(trained):
    result, run = trained["result"], trained["run"]
    assert run.name.startswith("tiny-")
    # the run directory, announced before training and again at the end (a long path may be wrapped)
    assert str(run) in "".join(result.stderr.split())
    assert str(run) in "".join(result.stdout.split())
    for words in ("validation", "test", "loss (nats per answer token", "accuracy of the answer's barks", "<EOS>"):
        assert words in result.stdout  # the final figures, each saying what it counts
    assert "Traceback" not in result.output


def test_train_writes_one_run_directory(trained):
    assert [p.name for p in trained["runs"].iterdir()] == [trained["run"].name]
    names = {p.name for p in trained["run"].iterdir()}
    assert {"config.yaml", "meta.json", "metrics.jsonl", "summary.json", "samples.jsonl", "checkpoints"} <= names


def test_run_config_is_the_resolved_config(trained):
    saved = yaml.safe_load((trained["run"] / "config.yaml").read_text())
    assert saved == load_config(trained["config"]).model_dump()
    assert saved["model"]["ffn_dim"] == 32


def test_run_meta(trained):
    meta = json.loads((trained["run"] / "meta.json").read_text())
    assert meta["status"] == "completed"
    assert meta["seed"] == 0
    assert isinstance(meta["params"], int) and meta["params"] > 0
    assert isinstance(meta["state_bytes"], int) and meta["state_bytes"] > 0


def test_run_metrics(trained):
    rows = [json.loads(line) for line in (trained["run"] / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]  # eval_every=1, steps=3
    for row in rows:
        assert isinstance(row["val_loss"], float) and row["val_loss"] > 0
        assert 0 <= row["val_accuracy"] <= 1


def test_run_summary(trained):
    summary = json.loads((trained["run"] / "summary.json").read_text())
    meta = json.loads((trained["run"] / "meta.json").read_text())
    last = json.loads((trained["run"] / "metrics.jsonl").read_text().splitlines()[-1])
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["model"] == "gpt" and summary["task"] == "barks"
    assert summary["steps"] == 3
    assert summary["val_loss"] == pytest.approx(last["val_loss"])
    assert summary["excess_loss"] == pytest.approx(summary["val_loss"] - summary["floor_loss"])
    assert 1.0 < summary["floor_loss"] < 2.0  # the entropy of 2..10 uniform barks, about 1.50 nats
    assert (summary["params"], summary["state_bytes"]) == (meta["params"], meta["state_bytes"])
    assert summary["tokens_per_second"] > 0 and summary["wall_seconds"] > 0
    assert "accuracy_by_distance" not in summary  # echo only


def test_run_samples(trained):
    rows = [json.loads(line) for line in (trained["run"] / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2  # sample.num_samples
    for row in rows:
        assert row["prompt"] == "User: speak Assistant:"  # the task's own prompt
        assert isinstance(row["text"], str)
        assert isinstance(row["stopped"], bool)
        assert set(row["text"].split()) <= set(VOCAB) - {"<EOS>"}


def test_run_checkpoints_are_safetensors(trained):
    run = trained["run"]
    weights = sorted((run / "checkpoints").rglob("model.safetensors"))
    assert weights
    assert load_file(weights[-1])  # loads, and holds tensors
    for path in (run / "checkpoints").rglob("*"):
        if path.is_file():
            assert path.suffix == ".safetensors", path  # no pickle anywhere


# ---- generate -------------------------------------------------------------------------------


def generate(runner, run, *args) -> list[str]:
    """The samples that `barkbench generate RUN *args` prints, each as one line of single-spaced words."""
    result = runner.invoke(app, ["generate", str(run), *args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert re.match(r"\s*1\. ", result.stdout), result.stdout
    return [" ".join(sample.split()) for sample in re.split(r"(?m)^\s*\d+\. ", result.stdout)[1:]]


def test_generate_prints_samples(runner, trained):
    shown = generate(runner, trained["run"], "-n", "3")
    assert len(shown) == 3
    for line in shown:
        assert "User: speak Assistant:" in line


def test_generate_greedy_is_the_same_for_every_sample_and_seed(runner, trained):
    run = trained["run"]
    greedy = generate(runner, run, "--temperature", "0", "-n", "3", "--seed", "1")
    assert len(greedy) == 3
    assert len(set(greedy)) == 1
    assert generate(runner, run, "--temperature", "0", "-n", "3", "--seed", "2") == greedy


def test_generate_top_k_1_is_greedy(runner, trained):
    run = trained["run"]
    assert generate(runner, run, "--top-k", "1", "--temperature", "1.0", "-n", "2") == generate(
        runner, run, "--temperature", "0", "-n", "2"
    )


def test_generate_seed_decides_the_samples(runner, trained):
    run = trained["run"]
    args = ["-n", "4", "--temperature", "1.0", "--max-new-tokens", "20"]
    first = generate(runner, run, *args, "--seed", "5")
    assert generate(runner, run, *args, "--seed", "5") == first
    assert generate(runner, run, *args, "--seed", "6") != first


def test_generate_never_emits_pad(runner, trained):
    """<PAD> is not a word of any answer; a sampler must never produce it, even from a barely trained model."""
    for seed in range(3):
        for line in generate(runner, trained["run"], "-n", "8", "--temperature", "1.5", "--seed", str(seed)):
            assert "<PAD>" not in line


def test_generate_with_a_prompt(runner, trained):
    prompt = "User: woof arf speak Assistant:"
    shown = generate(runner, trained["run"], "--prompt", prompt, "-n", "2", "--max-new-tokens", "4")
    assert len(shown) == 2
    for line in shown:
        assert prompt in line
        answer = line.split(prompt, 1)[1].replace("(no <EOS>)", "").split()
        assert len(answer) <= 4


def test_generate_prints_one_sample_per_line(runner, trained):
    """Samples go to stdout to be piped; a long one must not be wrapped at 80 columns."""
    result = runner.invoke(
        app, ["generate", str(trained["run"]), "-n", "3", "--max-new-tokens", "30", "--temperature", "1.5"]
    )
    assert result.exit_code == 0, result.output
    assert len(lines(result.stdout)) == 3, result.stdout


def test_generate_a_prompt_with_an_unknown_word(runner, trained):
    result = runner.invoke(app, ["generate", str(trained["run"]), "--prompt", "User: meow Assistant:"])
    assert_clean_error(result, "'meow'", "woof")


def test_generate_a_missing_run(runner, tmp_path):
    result = runner.invoke(app, ["generate", str(tmp_path / "runs" / "nope")])
    assert_clean_error(result, "nope", "does not exist")


def test_generate_a_directory_that_is_not_a_run(runner, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    result = runner.invoke(app, ["generate", str(tmp_path / "notes")])
    assert_clean_error(result, "notes", "not a barkbench run")


def test_generate_an_unfinished_run(runner, trained, tmp_path):
    run = tmp_path / trained["run"].name
    shutil.copytree(trained["run"], run)
    meta = json.loads((run / "meta.json").read_text())
    meta["status"] = "interrupted"
    (run / "meta.json").write_text(json.dumps(meta))
    result = runner.invoke(app, ["generate", str(run)])
    assert_clean_error(result, "interrupted", "--resume")


# ---- help -----------------------------------------------------------------------------------

COMMANDS = sorted(typer.main.get_command(app).commands)


def test_top_level_help_lists_every_command(runner):
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_shows_an_example(runner, name):
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    examples = [line.strip(" │") for line in result.stdout.splitlines() if line.strip(" │").startswith("barkbench ")]
    assert any(line.startswith(f"barkbench {name}") for line in examples), result.stdout


# ---- fast start: what each quick command leaves unimported ----------------------------------


@pytest.mark.parametrize(
    "args, imported",
    [
        (["--help"], set()),
        (["configs"], set()),
        (["runs", "{runs}"], set()),
        (["validate", "--config", "baby"], {"pydantic"}),  # validation is pydantic's; no torch, no drawing
        (["validate", "--config", "smoke"], {"pydantic"}),  # a study: every run's config checked, none trained
    ],
)
def test_quick_commands_import_neither_torch_nor_matplotlib(trained, args, imported):
    assert heavy_imports(*(a.format(runs=trained["runs"]) for a in args)) == imported


# ---- finding one's way --------------------------------------------------------------------


def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"barkbench {__version__}"


def test_configs_lists_every_shipped_config_with_its_purpose(runner):
    result = runner.invoke(app, ["configs"])
    assert result.exit_code == 0, result.output
    for name, path in locate.shipped_configs().items():
        assert name in result.stdout
        assert locate.purpose(path) and locate.purpose(path)[:40] in result.stdout


def test_a_bare_name_finds_a_shipped_config_from_any_directory(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    result = runner.invoke(app, ["validate", "--config", "echo_gpt"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["name"] == "echo-gpt"


def test_latest_and_a_unique_prefix_name_a_run(runner, trained, monkeypatch):
    monkeypatch.chdir(trained["runs"].parent)  # runs/ holds the one trained run
    name = trained["run"].name
    for given in ("latest", name[:8], f"runs/{name}"):
        assert generate(runner, given, "-n", "1", "--temperature", "0") == generate(
            runner, trained["run"], "-n", "1", "--temperature", "0"
        )


def test_a_prefix_of_several_runs_is_a_clear_error(runner, trained, tmp_path, monkeypatch):
    for copy in ("tiny-a", "tiny-b"):
        shutil.copytree(trained["run"], tmp_path / "runs" / copy)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["generate", "tiny-"])
    assert_clean_error(result, "'tiny-' is the start of 2 run names", "tiny-a", "give more of it")


def test_a_completed_run_trains_on_to_more_steps(runner, trained, tmp_path):
    run = tmp_path / trained["run"].name
    shutil.copytree(trained["run"], run)
    result = runner.invoke(app, ["train", "--resume", str(run), "train.steps=5"])
    assert result.exit_code == 0, result.output
    assert "resuming from step 3 of 5" in result.stderr
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]
    assert json.loads((run / "summary.json").read_text())["steps"] == 5
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 5
    assert json.loads((run / "meta.json").read_text())["status"] == "completed"


def test_generate_gives_each_sample_a_prompt_of_its_own_and_judges_it(runner, tmp_path):
    data = tiny()
    data["task"] = {"name": "echo", "message_length": 2, "max_gap": 4, "train_size": 64, "val_size": 16}
    config = tmp_path / "echo.yaml"
    config.write_text(yaml.safe_dump(data))
    assert runner.invoke(app, ["train", "--config", str(config), "--runs-dir", str(tmp_path / "runs")]).exit_code == 0
    (run,) = (tmp_path / "runs").iterdir()
    result = runner.invoke(app, ["generate", str(run), "-n", "6", "--temperature", "0"])
    assert result.exit_code == 0, result.output
    shown = [line for line in result.stdout.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert len(shown) == 6
    assert len({line.split("Assistant:")[0] for line in shown}) > 1  # greedy, yet several prompts
    assert all("✓" in line or "✗ expected:" in line for line in shown)  # each judged


def test_progress_piped_to_a_file_is_a_plain_line_per_evaluation(runner, write_config, tmp_path):
    result = runner.invoke(app, ["train", "--config", str(write_config(tiny())), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("tiny: step")]
    assert [line.split(",")[0] for line in lines] == ["tiny: step 1/3", "tiny: step 2/3", "tiny: step 3/3"]
    assert all("elapsed" in line and "eta" in line for line in lines)
    assert "tiny: completed" in result.stderr


@pytest.mark.slow
def test_a_plain_install_trains_a_shipped_config_by_name_from_any_directory(tmp_path):
    """The package as a wheel holds the shipped configs: installed (not editable) into a folder of
    its own, it lists them and trains one by its bare name, with no checkout in sight."""
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parent.parent
    wheels = tmp_path / "wheels"
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(wheels),
        str(root),
    ]
    subprocess.run(build, check=True, capture_output=True)
    (wheel,) = wheels.glob("barkbench-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "OMP_NUM_THREADS": "1"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def barkbench(*args):
        return subprocess.run(
            [sys.executable, "-m", "barkbench", *args], cwd=elsewhere, env=env, capture_output=True, text=True
        )

    where = subprocess.run(
        [sys.executable, "-c", "import barkbench; print(barkbench.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(tmp_path / "site")), where.stdout  # the installed copy, not the checkout
    listed = barkbench("configs")
    assert listed.returncode == 0 and "echo_gpt" in listed.stdout and "smoke" in listed.stdout, listed.stderr
    trained = barkbench(
        "train", "--config", "baby", "train.steps=2", "train.eval_every=1", "task.train_size=64", "task.val_size=16"
    )
    assert trained.returncode == 0, trained.stderr
    (run,) = (elsewhere / "runs").iterdir()
    assert json.loads((run / "meta.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    "words, expected",
    [
        ("barkbench train --config ech", {"echo_gpt", "echo_lstm", "echo_rnn"}),
        ("barkbench compare --config smo", {"smoke"}),
    ],
)
def test_shell_completion_offers_shipped_config_names(runner, words, expected):
    env = {"_BARKBENCH_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    result = runner.invoke(app, [], env=env, prog_name="barkbench")
    assert set(result.stdout.split()) >= expected


def test_shell_completion_offers_latest_and_the_run_directories(runner, trained, monkeypatch):
    monkeypatch.chdir(trained["runs"].parent)
    name = trained["run"].name
    for typed, expected in (("la", "latest"), (name[:6], name), ("runs/ti", f"runs/{name}")):
        env = {"_BARKBENCH_COMPLETE": "complete_bash", "COMP_WORDS": f"barkbench generate {typed}", "COMP_CWORD": "2"}
        result = runner.invoke(app, [], env=env, prog_name="barkbench")
        assert expected in result.stdout.split(), (typed, result.stdout)


# ---- typos, threads, latest ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--config", "baby", "train.stpes=5"],
        ["train", "--config", "baby", "model.heads=3"],
        ["compare", "--config", "smoke", "model.hiden_size=4"],
        ["compare", "--config", "smoke", "--jobs", "2", "train.steps=-1"],
    ],
)
def test_a_typo_is_reported_before_torch_is_imported(tmp_path, args):
    """So `train` and `compare` answer a typo as quickly as `validate` does."""
    assert "torch" not in heavy_imports(*args, "--runs-dir", tmp_path / "runs", status=2)
    assert not (tmp_path / "runs").exists()


def test_threads_beyond_the_cores_are_kept_with_a_line_that_says_it_will_be_slower(runner, write_config, tmp_path):
    from barkbench.study.job import cores

    data = tiny()
    data["threads"] = cores() + 1
    result = runner.invoke(app, ["train", "--config", str(write_config(data)), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    line = f"threads={cores() + 1} is more than the {cores()} cores here, so the run will be slower"
    assert result.stderr.count(line) == 1
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "meta.json").read_text())["threads"] == cores() + 1  # not capped


def test_latest_names_what_it_picked_and_looks_where_runs_dir_and_the_environment_say(
    runner, trained, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no runs/ here: only --runs-dir or BARKBENCH_RUNS_DIR can find the run
    result = runner.invoke(app, ["generate", "latest", "-n", "1", "--runs-dir", str(trained["runs"])])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == f"latest: {trained['run']}"
    monkeypatch.setenv("BARKBENCH_RUNS_DIR", str(trained["runs"]))
    for args in (["generate", "latest", "-n", "1"], ["generate", trained["run"].name[:6], "-n", "1"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines()[0] == f"{args[1]}: {trained['run']}"
    listed = runner.invoke(app, ["runs"])
    assert listed.exit_code == 0 and trained["run"].name in listed.stdout
    refused = runner.invoke(app, ["train", "--resume", "latest"])  # the env var's latest: a completed run
    assert refused.exit_code == 2 and "has already completed" in refused.stderr


def test_a_config_whose_eval_every_is_too_large_for_its_steps_is_lowered_with_a_line(runner, write_config, tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(write_config(tiny())),
            "--runs-dir",
            str(tmp_path / "runs"),
            "train.steps=10",
            "train.eval_every=6",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "train.eval_every (6) is more than train.steps / 5 (10 / 5), so the curves would have fewer than 5 points; lowered to 2"
        in result.stderr
    )
    (run,) = (tmp_path / "runs").iterdir()
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6, 8, 10]
