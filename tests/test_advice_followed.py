"""Advice followed, the cheap half: each test makes a message that tells the user what to do,
reads what to do out of it (the key, the value, the command), does that, and checks that the
command then succeeds. Most go through `barkbench validate`, which trains nothing. A command that
a message gives is run as given, from tmp_path, so that the runs/ it writes is there; where it
names a shipped config, CHEAP cuts its training short.

The advice that needs a long run, a process to stop or a damaged run is followed in
test_advice.py and test_damage.py."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers import TINY, cli, meta, only_run, tiny, train_config

from barkbench.vocab import VOCAB

# What makes a shipped config's run take well under a second: its task and training cut short.
CHEAP = [
    "train.steps=2",
    "train.eval_every=1",
    "task.train_size=64",
    "task.val_size=16",
    "task.test_size=16",
    "sample.num_samples=1",
]


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(result, status: int = 2) -> str:
    """The one sentence after `error:` of a command that failed as bad input does."""
    assert result.exit_code == status, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line.removeprefix("error: ")


def advised(text: str, after: str, until: str | None = None) -> list[str]:
    """The barkbench command a message gives after `after` (up to `until`), as arguments."""
    command = text.split(after, 1)[1]
    command = command.split(until, 1)[0] if until else command
    words = shlex.split(command.strip().strip("`"))
    assert words[0] == "barkbench", text
    return words[1:]


def example(text: str) -> list[str]:
    """The arguments a message gives "(for example ...)"."""
    return shlex.split(text.split("(for example ", 1)[1].split(")", 1)[0])


def succeeds(*args) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "error:" not in result.stderr
    return result.stdout


def resolved(*args) -> dict:
    """The config `barkbench validate ARGS` prints, which it must accept."""
    return yaml.safe_load(succeeds("validate", *args))


def dotted(data: dict, key: str):
    for part in key.split("."):
        data = data[part]
    return data


def moved(data: dict, key: str, to: str) -> dict:
    """data with the value at dotted `key` moved to dotted `to` (a section it leaves empty goes too)."""
    parts, nodes = key.split("."), [data]
    for part in parts[:-1]:
        nodes.append(nodes[-1][part])
    value = nodes[-1].pop(parts[-1])
    for node, part in reversed(list(zip(nodes, parts[:-1]))):
        if not node[part]:
            del node[part]
    *parents, leaf = to.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return data


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny completed gpt run (TINY: 3 steps, context_length 32), trained once for the module."""
    return train_config(TINY, tmp_path_factory.mktemp("trained") / "runs")


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    """TINY as a file: every advice about a config's keys and values is followed on it."""
    return write(tmp_path / "tiny.yaml", TINY)


# ---- a config's keys and values: followed by `validate` -----------------------------------------


@pytest.mark.parametrize(
    "patch",
    [
        {"model": {**TINY["model"], "embeding_dim": 24}},  # a typo in a section
        {"embedding_dim": 24},  # a model key written at the top
        {"trian": {"steps": 5}},  # a typo in a section's name
    ],
    ids=["typo", "misplaced", "section-typo"],
)
def test_an_unknown_key_in_a_file_validates_once_it_is_the_key_the_message_suggests(tmp_path, patch):
    config = write(tmp_path / "config.yaml", {**tiny(), **patch})
    line = error_of(cli("validate", "--config", config))
    unknown, meant = re.search(r"unknown key '([\w.]+)'; did you mean '([\w.]+)'\?$", line).groups()
    value = dotted(patch, unknown)
    write(config, moved({**tiny(), **patch}, unknown, meant))
    assert dotted(resolved("--config", config), meant) == value


@pytest.mark.parametrize("override", ["model.embeding_dim=24", "embedding_dim=24", "trian.steps=5"])
def test_an_unknown_key_in_an_override_validates_once_it_is_the_key_the_message_suggests(tiny_config, override):
    line = error_of(cli("validate", "--config", tiny_config, override))
    unknown, meant = re.search(r"unknown key '([\w.]+)'; did you mean '([\w.]+)'\?$", line).groups()
    key, value = override.split("=")
    assert unknown == key
    assert dotted(resolved("--config", tiny_config, f"{meant}={value}"), meant) == int(value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.heads=5", "model.embedding_dim=24"],
        ["model.name=transformer", "model.heads=5"],
        ["model.name=deltanet", "model.heads=3"],
        ["model.name=rnn", "model.attention=mha", "model.heads=5"],
    ],
    ids=["gpt", "transformer", "deltanet", "rnn-attention"],
)
def test_heads_that_do_not_divide_the_width_validate_at_the_value_the_message_suggests(tiny_config, overrides):
    line = error_of(cli("validate", "--config", tiny_config, *overrides))
    heads = int(re.search(r"use a heads value that divides it, such as (\d+)$", line)[1])
    assert resolved("--config", tiny_config, *overrides, f"model.heads={heads}")["model"]["heads"] == heads


def test_rope_on_an_odd_head_size_validates_once_the_sizes_make_it_even(tiny_config):
    overrides = ["model.positional=rope", "model.embedding_dim=18"]
    line = error_of(cli("validate", "--config", tiny_config, *overrides))
    found = re.search(r"each head has (\d+) \((model\.\w+) (\d+) / (\d+) heads\), an odd number; pick sizes", line)
    per_head, key, width, heads = found.groups()
    assert int(width) == int(per_head) * int(heads)
    even = int(heads) * (int(per_head) + 1)
    assert dotted(resolved("--config", tiny_config, *overrides, f"{key}={even}"), key) == even


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.context_length=4"],
        ["task.name=mqar", "task.num_pairs=16", "task.num_keys=16"],
        ["task.name=echo", "eval={max_gap: 200}"],
        ["task.name=induction", "task.max_length=40", "model.context_length=40"],
    ],
    ids=["barks", "mqar", "echo-eval", "induction"],
)
def test_sequences_over_the_context_validate_at_the_context_length_the_message_gives(tiny_config, overrides):
    line = error_of(cli("validate", "--config", tiny_config, *overrides))
    longest = int(re.search(r"raise model\.context_length to at least (\d+) or shorten the task$", line)[1])
    fixed = resolved("--config", tiny_config, *overrides, f"model.context_length={longest}")
    assert fixed["model"]["context_length"] == longest


def ordering_fixes(line: str) -> list[list[str]]:
    """The overrides for each way out that an ordering message offers ("raise num_keys or lower
    num_pairs", "swap them"), with the values it names."""
    found = re.search(r"task\.(\w+) \((\d+)\) is above task\.(\w+) \((\d+)\)[^;]*; (.+)$", line)
    low, low_value, high, high_value, fix = found.groups()
    if fix == "swap them":
        return [[f"task.{low}={high_value}", f"task.{high}={low_value}"]]
    ways = re.findall(r"(raise|lower) (\w+)", fix)
    assert " or ".join(f"{verb} {key}" for verb, key in ways) == fix, fix
    assert {(verb, key) for verb, key in ways} <= {("raise", high), ("lower", low)}, fix
    return [[f"task.{key}={low_value if key == high else high_value}"] for _, key in ways]


@pytest.mark.parametrize(
    "overrides",
    [
        ["task.name=mqar", "task.num_pairs=6", "task.num_keys=4"],
        ["task.name=mqar", "task.num_pairs=4", "task.num_queries=6"],
        ["task.name=selective_copy", "task.length=4", "task.num_tokens=6"],
        ["task.name=induction", "task.min_length=12", "task.max_length=6"],
        ["task.name=echo", "task.min_gap=9", "task.max_gap=3"],
        ["task.name=copy", "task.min_length=5", "task.max_length=2"],
        ["task.min_barks=5", "task.max_barks=3"],
    ],
    ids=["mqar-keys", "mqar-queries", "selective-copy", "induction", "echo", "copy", "barks"],
)
def test_task_sizes_in_the_wrong_order_validate_each_way_the_message_offers(tiny_config, overrides):
    line = error_of(cli("validate", "--config", tiny_config, *overrides))
    fixes = ordering_fixes(line)
    assert fixes
    for fix in fixes:
        fixed = resolved("--config", tiny_config, *overrides, *fix)
        for item in fix:
            key, value = item.split("=")
            assert dotted(fixed, key) == int(value)


def test_a_sample_prompt_over_the_context_validates_once_it_is_shortened_to_fit(tiny_config):
    words = ["User:", *["woof"] * 40, "Assistant:"]
    line = error_of(cli("validate", "--config", tiny_config, f"sample.prompt={' '.join(words)}"))
    found = re.search(r"sample\.prompt has (\d+) tokens but model\.context_length is (\d+); shorten the prompt$", line)
    assert int(found[1]) == len(words)
    shorter = " ".join(words[: int(found[2]) - 1] + ["Assistant:"])
    assert resolved("--config", tiny_config, f"sample.prompt={shorter}")["sample"]["prompt"] == shorter


@pytest.mark.parametrize("override", ["steps", "train.steps:100", "=100"])
def test_an_override_that_is_not_key_value_validates_written_as_the_message_shows(tiny_config, override):
    line = error_of(cli("validate", "--config", tiny_config, override))
    written = re.search(rf"override {re.escape(repr(override))} is not KEY=VALUE; write it like (\S+)$", line)[1]
    key, value = written.split("=")
    assert dotted(resolved("--config", tiny_config, written), key) == int(value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_on_a_machine_without_one_validates_with_either_device_the_message_names(tiny_config):
    line = error_of(cli("validate", "--config", tiny_config, "device=cuda"))
    devices = re.search(r"; use device=(\w+) or device=(\w+)$", line).groups()
    for device in devices:
        assert resolved("--config", tiny_config, f"device={device}")["device"] == device


def test_tensorboard_asked_for_where_it_is_missing_validates_once_it_is_set_as_the_message_says(
    tiny_config, monkeypatch
):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    line = error_of(cli("validate", "--config", tiny_config, "log.tensorboard=true"))
    key, value = re.search(r", or set (log\.\w+)=(\w+)$", line).groups()
    assert dotted(resolved("--config", tiny_config, f"{key}={value}"), key) is yaml.safe_load(value)


# ---- the file itself: followed by mending it as the message says --------------------------------


def test_an_empty_config_validates_once_it_has_a_task_and_a_model_section(tmp_path):
    config = write(tmp_path / "empty.yaml", "")
    line = error_of(cli("validate", "--config", config))
    sections = re.search(r"is empty; give it at least a (\w+) and a (\w+) section$", line).groups()
    write(config, {section: {} for section in sections})
    assert set(sections) <= set(resolved("--config", config))


def test_a_latin1_config_validates_once_saved_as_utf8(tmp_path):
    config = tmp_path / "latin1.yaml"
    config.write_bytes(("# a café's config\n" + yaml.safe_dump(TINY)).encode("latin-1"))
    line = error_of(cli("validate", "--config", config))
    encoding = re.search(r"; save the file as ([\w-]+)$", line)[1]
    config.write_text(config.read_bytes().decode("latin-1"), encoding=encoding)
    resolved("--config", config)


def test_a_control_character_validates_once_removed_where_the_message_says(tmp_path):
    lines = yaml.safe_dump(TINY, sort_keys=False).splitlines(keepends=True)
    lines[3] = lines[3].replace(":", ":\x07", 1)
    config = write(tmp_path / "bell.yaml", "".join(lines))
    line = error_of(cli("validate", "--config", config))
    char, row, column = re.search(
        r"holds the character (0x\w+) at line (\d+), column (\d+),.*; remove it$", line
    ).groups()
    text = config.read_text().splitlines(keepends=True)
    at = text[int(row) - 1]
    assert at[int(column) - 1] == chr(int(char, 16))
    text[int(row) - 1] = at[: int(column) - 1] + at[int(column) :]
    config.write_text("".join(text))
    resolved("--config", config)


def test_a_key_written_twice_validates_once_merged_into_one(tmp_path):
    config = write(tmp_path / "twice.yaml", "seed: 3\n" + yaml.safe_dump(TINY, sort_keys=False))
    line = error_of(cli("validate", "--config", config))
    key, first, second = re.search(
        r"has the key '([\w.]+)' twice, at lines (\d+) and (\d+), .*merge them", line
    ).groups()
    text = config.read_text().splitlines(keepends=True)
    assert text[int(first) - 1].startswith(key) and text[int(second) - 1].startswith(key)
    del text[int(first) - 1]  # merged: the one YAML would have kept
    config.write_text("".join(text))
    assert resolved("--config", config)[key] == TINY[key]


# ---- a config given to the other command: followed by running the command the message names ----


def test_a_compare_config_given_to_train_runs_with_the_compare_command_the_message_gives(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the command, as given, writes its study: runs/
    study = {"name": "tiny-study", "base": TINY, "models": [{"name": "gpt"}], "seeds": [0]}
    config = write(tmp_path / "my studies" / "study.yaml", study)  # a space, which the command must quote
    line = error_of(cli("train", "--config", config))
    command = advised(line, "run it with: ")
    assert command == ["compare", "--config", str(config)]
    succeeds(*command)
    findings = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())
    assert [row["status"] for row in findings["runs"]] == ["completed"]


def test_a_training_config_given_to_compare_trains_with_the_train_command_the_message_gives(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "my configs" / "tiny.yaml", TINY)
    line = error_of(cli("compare", "--config", config))
    command = advised(line, "train it with: ")
    assert command == ["train", "--config", str(config)]
    succeeds(*command)
    assert meta(only_run(tmp_path / "runs"))["status"] == "completed"


def test_train_with_no_config_trains_the_shipped_config_the_message_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = error_of(cli("train"))
    option, name = example(line)
    assert option == "--config"
    succeeds("train", option, name, *CHEAP)
    assert meta(only_run(tmp_path / "runs"))["status"] == "completed"


def test_compare_with_no_config_validates_the_shipped_config_the_message_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = error_of(cli("compare"))
    option, name = example(line)
    assert option == "--config"
    # the shipped study trains for minutes: `validate` checks the same config and every run of it
    assert "validate trains none of them" in succeeds("validate", option, name)


@pytest.mark.parametrize("where", ["runs", "elsewhere"])
def test_runs_in_an_empty_directory_says_how_to_start_one_there_and_that_lists_it(tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    Path(where).mkdir()
    said = succeeds("runs", where)
    command = advised(said, "start one with: ")
    assert command[:3] == ["train", "--config", "baby"]
    succeeds(*command, *CHEAP)  # cut short: the advice is where the run goes, and that it trains
    listed = succeeds("runs", where)
    assert only_run(Path(where)).name in listed and "no runs in" not in listed


# ---- a trained run: prompts, its config and its checkpoints --------------------------------------


@pytest.mark.parametrize("command", ["generate", "inspect"])
def test_an_empty_prompt_works_as_the_prompt_the_message_suggests(tmp_path, trained, command):
    line = error_of(cli(command, trained, "--prompt", " "))
    option, prompt = shlex.split(re.search(r"such as (--prompt .+)$", line)[1])
    out = ["--out", tmp_path / "pictures"] if command == "inspect" else ["-n", "1"]
    succeeds(command, trained, option, prompt, *out)


def test_a_word_outside_the_vocabulary_works_replaced_by_any_word_the_message_lists(trained):
    line = error_of(cli("generate", trained, "--prompt", "User: meow Assistant:"))
    words = re.search(r"the word 'meow' is not in the vocabulary; use only: (.+)$", line)[1].split()
    assert tuple(words) == VOCAB  # a barks run's words: no numbered runs folded
    for word in words:
        succeeds("generate", trained, "--prompt", f"User: {word} Assistant:", "-n", "1")


def test_a_prompt_over_the_context_works_shortened_to_the_length_the_message_gives(trained):
    words = ["User:", *["woof"] * 40, "Assistant:"]
    line = error_of(cli("generate", trained, "--prompt", " ".join(words)))
    found = re.search(r"the prompt has (\d+) tokens but the model's context_length is (\d+); shorten the prompt$", line)
    assert int(found[1]) == len(words)
    context = int(found[2])
    for length in (context - 2, context):  # room for an answer, and the longest prompt that fits
        succeeds("generate", trained, "--prompt", " ".join(words[: length - 1] + ["Assistant:"]), "-n", "1")


def test_a_config_edited_after_training_works_restored_or_trained_as_a_new_run(tmp_path, trained):
    run = shutil.copytree(trained, tmp_path / "runs" / trained.name)
    original = (run / "config.yaml").read_text()
    edited = yaml.safe_load(original)
    edited["model"]["embedding_dim"] *= 2
    write(run / "config.yaml", edited)
    line = error_of(cli("generate", run, "-n", "1"), status=1)
    assert line.endswith("the config was edited after training, so restore it or train a new run")

    succeeds("train", "--config", run / "config.yaml", "--runs-dir", tmp_path / "new")  # a new run of it
    succeeds("generate", only_run(tmp_path / "new"), "-n", "1")
    (run / "config.yaml").write_text(original)  # restored
    succeeds("generate", run, "-n", "1")


def test_a_run_whose_checkpoints_are_gone_is_trained_again_by_the_command_the_message_gives(tmp_path, trained):
    runs = tmp_path / "runs"
    run = shutil.copytree(trained, runs / trained.name)
    shutil.rmtree(run / "checkpoints")
    line = error_of(cli("generate", run), status=1)
    assert f"run {run} has no checkpoint (its checkpoints/ is empty or gone)" in line
    command = advised(line, "; `", until="` trains it again")
    assert command == ["train", "--config", str(run / "config.yaml"), "--runs-dir", str(runs)]
    succeeds(*command)
    (again,) = set(runs.iterdir()) - {run}
    succeeds("generate", again, "-n", "1")


@pytest.mark.parametrize(
    "extra, dropped",
    [(["--config", "{config}"], "; drop --config"), (["model.layers=2"], "(drop --config and the other overrides)")],
    ids=["config", "override"],
)
def test_resume_with_a_config_or_overrides_works_once_they_are_dropped(tmp_path, trained, extra, dropped):
    run = shutil.copytree(trained, tmp_path / "runs" / trained.name)
    (run / "meta.json").write_text(json.dumps({**meta(run), "status": "interrupted"}))
    config = write(tmp_path / "tiny.yaml", TINY)
    line = error_of(cli("train", "--resume", run, *[str(config) if a == "{config}" else a for a in extra]))
    assert line.endswith(dropped)
    succeeds("train", "--resume", run)
    assert meta(run)["status"] == "completed"


# ---- the machine's errors: followed once the machine is fixed ------------------------------------


def full_once(monkeypatch, owner, name: str) -> None:
    """owner.name raises a full disk's OSError, naming the file it was to write, the first time
    it is called; then it works."""
    real, calls = getattr(owner, name), []

    def full(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            path = next(a for a in args if isinstance(a, (str, Path)))
            raise OSError(28, "No space left on device", str(path))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, full)


def test_a_full_disk_in_a_study_says_how_to_resume_the_study_and_that_finishes_it(tmp_path, monkeypatch):
    from barkbench.study import outputs

    full_once(monkeypatch, outputs, "write_json")  # results.json, once its run has trained
    study = {"name": "tiny-study", "base": TINY, "models": [{"name": "gpt"}], "seeds": [0]}
    runs = tmp_path / "runs"
    line = error_of(cli("compare", "--config", write(tmp_path / "study.yaml", study), "--runs-dir", runs), status=1)
    directory = only_run(runs)
    assert line == (
        f"No space left on device: {directory / 'results.json'}; once that is fixed, resume the study with: "
        f"barkbench compare --resume {directory}"
    )
    succeeds(*advised(line, "resume the study with: "))
    findings = json.loads((directory / "results.json").read_text())
    assert [row["status"] for row in findings["runs"]] == ["completed"]


def test_a_full_disk_outside_training_says_to_run_the_command_again_and_that_works(tmp_path, trained, monkeypatch):
    from matplotlib.figure import Figure

    full_once(monkeypatch, Figure, "savefig")
    command = ["inspect", trained, "--out", tmp_path / "pictures"]
    line = error_of(cli(*command), status=1)
    assert line.endswith("; once that is fixed, run the command again")
    assert "wrote" in succeeds(*command)
