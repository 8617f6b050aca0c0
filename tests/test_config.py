"""The config contract: unknown keys with suggestions, every problem at once, defaults, overrides."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from helpers import tiny

from barkbench.config import apply_overrides, load_config, validate
from barkbench.errors import BarkError, exit_code
from barkbench.yamlfile import read_yaml


def names(message: str, value) -> bool:
    """Whether the message names this value as a word of its own (so '0' is not found in '10')."""
    return re.search(rf"(?<![\w.]){re.escape(str(value))}(?![\w.])", message) is not None


def problems_of(data: dict) -> str:
    """The message of the BarkError that validating data raises (it must raise, with status 2)."""
    with pytest.raises(BarkError) as caught:
        validate(data, "my.yaml")
    assert exit_code(caught.value) == 2
    return str(caught.value)


# ---- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "suggestion"),
    [
        ({"model": {"hiden_size": 32}}, "model.hiden_size", "model.hidden_size"),
        ({"steps": 100}, "steps", "train.steps"),
        ({"task": {"max_gapp": 10}}, "task.max_gapp", "task.max_gap"),
        # a misspelt section holding one key: the whole key is named and suggested
        ({"trian": {"steps": 10}}, "trian.steps", "train.steps"),
        ({"modle": {"name": "gpt"}}, "modle.name", "model.name"),
        # holding several keys: the section is suggested
        ({"trian": {"steps": 10, "lr": 0.1}}, "trian", "train"),
    ],
)
def test_unknown_key_is_named_with_the_nearest_known_key(data, key, suggestion):
    message = problems_of(data)
    assert f"'{key}'" in message
    assert f"did you mean '{suggestion}'" in message


def test_every_problem_is_reported_at_once():
    data = {
        "model": {"embedding_dim": 30, "heads": 4},
        "train": {"steps": "many", "lr": -1},
        "task": {"name": "barks", "min_barks": 9, "max_barks": 3},
        "sample": {"temprature": 0.5},
        "device": "gpu",
        "steps": 5,
    }
    message = problems_of(data)
    for expected in [
        "model.heads (4)",
        "train.steps",
        "'many'",
        "train.lr",
        "task.min_barks (9)",
        "'sample.temprature'",
        "did you mean 'sample.temperature'",
        "device",
        "'gpu'",
        "unknown key 'steps'",
        "did you mean 'train.steps'",
    ]:
        assert expected in message, f"{expected!r} missing from:\n{message}"
    assert message.startswith("my.yaml has 7 problems")
    assert message.count("\n  - ") == 7


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {
                "task": {"name": "echo", "message_length": 8, "max_gap": 600},
                "model": {"name": "gpt", "context_length": 512},
                "train": {"steps": "many"},
            },
            ["train.steps", "context_length is 512"],
            id="context-beside-another-section",
        ),
        pytest.param(
            {"model": {"embedding_dim": 32, "heads": 3, "context_length": "long"}},
            ["model.context_length", "model.heads (3)"],
            id="heads-beside-a-type-error",
        ),
        pytest.param(
            {"model": {"embedding_dim": 32, "heads": 3, "hiden_size": 8}},
            ["model.hiden_size", "model.heads (3)"],
            id="heads-beside-an-unknown-key",
        ),
    ],
)
def test_consistency_problems_are_reported_with_the_others(data, expected):
    """DESIGN: 'All errors in a config are reported at once': the checks that relate two keys
    (heads dividing the width, a sequence longer than context_length) are not held back
    until the other mistakes are fixed."""
    message = problems_of(data)
    for part in expected:
        assert part in message, f"{part!r} missing from:\n{message}"


# ---- wrong types and impossible values name the key and the value --------------------------


@pytest.mark.parametrize(
    ("data", "key", "value"),
    [
        ({"train": {"steps": "many"}}, "train.steps", "many"),
        ({"train": {"lr": "fast"}}, "train.lr", "fast"),
        ({"seed": "zero"}, "seed", "zero"),
        ({"model": {"embedding_dim": 0}}, "model.embedding_dim", "0"),
        ({"model": {"hidden_size": -8}}, "model.hidden_size", "-8"),
        ({"model": {"layers": 0}}, "model.layers", "0"),
        ({"task": {"train_size": -5}}, "task.train_size", "-5"),
        ({"train": {"batch_size": 0}}, "train.batch_size", "0"),
        ({"model": {"dropout": 1.5}}, "model.dropout", "1.5"),
        ({"model": {"name": "hyena"}}, "model.name", "hyena"),
        ({"task": {"name": "parrot"}}, "task.name", "parrot"),
        ({"device": "gpu"}, "device", "gpu"),
    ],
)
def test_wrong_type_or_impossible_value_names_key_and_value(data, key, value):
    message = problems_of(data)
    assert names(message, key), message
    assert names(message, value), message


def test_a_section_that_is_not_a_mapping_is_an_error():
    message = problems_of({"model": "gpt"})
    assert "model" in message and "'gpt'" in message


def test_unknown_model_and_task_list_the_known_names():
    message = problems_of({"model": {"name": "hyena"}, "task": {"name": "parrot"}})
    for name in ["rnn", "lstm", "gru", "gpt", "barks", "cycle", "echo"]:
        assert name in message


def test_heads_must_divide_embedding_dim_for_gpt():
    message = problems_of({"model": {"name": "gpt", "embedding_dim": 32, "heads": 3}})
    assert names(message, "model.heads") and names(message, 3)
    assert names(message, "model.embedding_dim") and names(message, 32)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_keys_that_do_not_apply_to_the_model_are_ignored(name):
    cfg = validate({"model": {"name": name, "embedding_dim": 32, "heads": 3, "context_length": 4}}, "my.yaml")
    assert cfg.model.name == name
    assert cfg.model.heads == 3


def test_echo_longer_than_context_length_is_an_error():
    # 2 x 8 + 128 + 4 = 148 tokens, context 100
    message = problems_of(
        {"task": {"name": "echo", "message_length": 8, "max_gap": 128}, "model": {"context_length": 100}}
    )
    assert "context_length" in message
    assert names(message, 148) and names(message, 100)


def test_sequence_longer_than_context_length_is_fine_for_an_rnn():
    cfg = validate(
        {"task": {"name": "echo", "max_gap": 128}, "model": {"name": "rnn", "context_length": 16}}, "my.yaml"
    )
    assert cfg.model.name == "rnn"


def test_cycle_longer_than_context_length_is_an_error():
    message = problems_of({"task": {"name": "cycle"}, "model": {"name": "gpt", "context_length": 64}})
    assert "context_length" in message and names(message, 204)


@pytest.mark.parametrize(
    ("task", "low", "high"),
    [
        ({"name": "barks", "min_barks": 9, "max_barks": 3}, "task.min_barks", "task.max_barks"),
        ({"name": "cycle", "min_barks": 150, "max_barks": 120}, "task.min_barks", "task.max_barks"),
        ({"name": "echo", "min_gap": 9, "max_gap": 3}, "task.min_gap", "task.max_gap"),
    ],
)
def test_min_above_max_is_an_error(task, low, high):
    message = problems_of({"task": task})
    assert low in message and high in message


def test_prompt_with_an_unknown_word_is_an_error():
    message = problems_of({"sample": {"prompt": "User: meow Assistant:"}})
    assert "sample.prompt" in message and "'meow'" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_an_error():
    message = problems_of({"device": "cuda"})
    assert "device" in message and "cuda" in message


# ---- defaults -------------------------------------------------------------------------------


def test_defaults_are_filled_in():
    cfg = validate({"model": {"name": "gpt", "embedding_dim": 24, "heads": 2}, "task": {"name": "barks"}}, "my.yaml")
    assert cfg.model.ffn_dim == 96
    assert (cfg.task.min_barks, cfg.task.max_barks) == (2, 10)
    assert cfg.name == "gpt-barks"
    assert cfg.seed == 0


def test_explicit_ffn_dim_is_kept():
    assert validate({"model": {"embedding_dim": 32, "ffn_dim": 128}}, "my.yaml").model.ffn_dim == 128


def test_cycle_defaults_to_100_to_200_barks():
    cfg = validate({"task": {"name": "cycle"}, "model": {"name": "lstm"}}, "my.yaml")
    assert (cfg.task.min_barks, cfg.task.max_barks) == (100, 200)
    assert cfg.name == "lstm-cycle"


def test_explicit_name_is_kept():
    assert validate({"name": "mine"}, "my.yaml").name == "mine"


# ---- files ----------------------------------------------------------------------------------


def test_load_config_reads_a_file(write_config):
    cfg = load_config(write_config(tiny()))
    assert cfg.name == "tiny"
    assert cfg.model.embedding_dim == 8


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("model:\n  name: gpt\n   layers: 2\n", ["not valid YAML", "line"]),
        ("model: {name: gpt\n", ["not valid YAML"]),
        ("- task\n- model\n", ["list", "mapping"]),
        ("", ["empty"]),
        ("# only a comment\n", ["empty"]),
        ("just a string\n", ["mapping"]),
    ],
)
def test_a_file_that_is_not_a_config_is_one_clear_error(write_config, text, words):
    path = write_config(text)
    with pytest.raises(BarkError) as caught:
        load_config(path)
    assert exit_code(caught.value) == 2
    assert str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_a_missing_file_is_an_error(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(BarkError) as caught:
        load_config(path)
    assert exit_code(caught.value) == 2
    assert str(path) in str(caught.value) and "does not exist" in str(caught.value)


# ---- overrides ------------------------------------------------------------------------------


def test_overrides_parse_values_as_yaml():
    data = {"train": {"steps": 10}}
    problems = apply_overrides(
        data, ["train.steps=100", "train.lr=0.01", "model.name=lstm", "name=my-run", "train.warmup_steps=0"]
    )
    assert problems == []
    assert data["train"]["steps"] == 100 and isinstance(data["train"]["steps"], int)
    assert data["train"]["lr"] == 0.01 and isinstance(data["train"]["lr"], float)
    assert data["model"] == {"name": "lstm"}
    assert data["name"] == "my-run"
    assert data["train"]["warmup_steps"] == 0


def test_overrides_apply_on_top_of_the_file(write_config):
    cfg = load_config(
        write_config(tiny()), ["model.name=lstm", "model.hidden_size=12", "train.lr=1e-3", "task.name=echo", "seed=7"]
    )
    assert cfg.model.name == "lstm"
    assert cfg.model.hidden_size == 12
    assert cfg.train.lr == pytest.approx(0.001)
    assert cfg.task.name == "echo"
    assert cfg.seed == 7
    assert cfg.model.embedding_dim == 8  # the rest of the file is kept


def test_a_prompt_override_is_taken_as_text(write_config):
    """`sample.prompt=User: speak Assistant:` is how a user writes it on the command line; the
    colon must not turn the prompt into a YAML mapping."""
    cfg = load_config(write_config(tiny()), ["sample.prompt=User: speak Assistant:"])
    assert cfg.sample.prompt == "User: speak Assistant:"


@pytest.mark.parametrize("bad", ["train.steps", "=5", "train..steps=5", ".steps=5"])
def test_an_override_that_is_not_key_value_is_an_error(bad):
    problems = apply_overrides({}, [bad])
    assert len(problems) == 1
    assert repr(bad) in problems[0] and "KEY=VALUE" in problems[0]


@pytest.mark.parametrize("bad", ["train.steps.x=1", "seed.value=3"])
def test_an_override_under_a_key_that_is_not_a_section_is_an_error(bad):
    data = {"seed": 0, "train": {"steps": 10}}
    problems = apply_overrides(data, [bad])
    assert len(problems) == 1
    assert "not a section" in problems[0]
    assert data == {"seed": 0, "train": {"steps": 10}}  # left alone


def test_override_problems_come_with_the_config_problems(write_config):
    with pytest.raises(BarkError) as caught:
        load_config(write_config(tiny()), ["train.steps", "model.hiden_size=3", "train.steps.x=1"])
    message = str(caught.value)
    assert exit_code(caught.value) == 2
    assert "'train.steps'" in message and "KEY=VALUE" in message
    assert "model.hiden_size" in message and "model.hidden_size" in message
    assert "not a section" in message


def test_an_unknown_key_given_as_override_is_reported(write_config):
    with pytest.raises(BarkError) as caught:
        load_config(write_config(tiny()), ["train.stpes=5"])
    assert "train.stpes" in str(caught.value) and "did you mean 'train.steps'" in str(caught.value)


# ---- reading YAML that someone else wrote ------------------------------------------------------


def test_anchors_aliases_and_merges_within_bounds_still_read_as_yaml_reads_them(write_config):
    text = (
        "base: &model {name: gpt, embedding_dim: 16, heads: 2}\nmodel:\n  <<: *model\n  heads: 4\ntask: {name: barks}\n"
    )
    data = read_yaml(write_config(text))
    assert data == yaml.safe_load(text)
    assert data["model"] == {"name": "gpt", "embedding_dim": 16, "heads": 4}  # a merge's key overridden: no duplicate


@pytest.mark.parametrize(
    "text, words",
    [
        ("a: " + "[" * 33 + "]" * 33, "nested more than 32 levels deep"),
        (
            "a: &x [" + ", ".join(["1"] * 400) + "]\nb: [" + ", ".join(["*x"] * 400) + "]\n",
            "expands to more than 100,000",
        ),
        ("task:\n  name: barks\n  name: echo\n", "the key 'task.name' twice, at lines 2 and 3"),
    ],
)
def test_a_dangerous_shape_is_refused_before_python_builds_it(write_config, text, words):
    with pytest.raises(BarkError, match=re.escape(words)):
        read_yaml(write_config(text))


def test_a_config_is_read_from_its_bytes_with_a_byte_order_mark_allowed(write_config, tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfseed: 3\n")
    assert read_yaml(path) == {"seed": 3}
