"""Plugins: a model family or task of another package, found by entry point (barkbench/registry.py)
and validated with the built-ins (the schema is built when a config is validated, not at import);
every way an entry point can be wrong, as one sentence and exit 2; a broken plugin leaving the
commands that need no registry working; and workers of `--jobs 2` finding the plugin too.

A plugin is "installed" here by a distribution's metadata on sys.path (NAME-0.1.dist-info with
its entry_points.txt, as pip writes it) beside its module: what importlib.metadata reads of an
installed package. (The example plugin installed with pip: tests/test_example_plugin.py.)
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import ENV, cli, results, tiny, train_config

from barkbench import plugins
from barkbench.config import validate
from barkbench.errors import BarkError
from barkbench.models import MODELS
from barkbench.tasks import TASKS

# A family of its own name built from the rnn's network, and a task from barks': what the
# registry finds is the point here, not what the plugin's network does.
FAMILY = """
from barkbench.models.recurrent import RNN, RecurrentConfig
from barkbench.plugins import Family

class Config(RecurrentConfig):
    name: str = "{name}"

def build(cfg, vocab_size):
    return RNN.build(cfg.model_copy(update={{"name": "rnn"}}), vocab_size)  # the rnn's network picks its cell by name

FAMILY = Family(config=Config, build=build)
"""
TASK = """
import dataclasses
from barkbench.tasks.barks import TASK as BARKS, BarksConfig

class Config(BarksConfig):
    name: str = "{name}"

TASK = dataclasses.replace(BARKS, config=Config)
"""


def install(site: Path, package: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> Path:
    """Write a distribution's metadata and its modules into site; entry_points: group -> {name: value}."""
    info = site / f"{package.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
            for group, points in entry_points.items()
        )
    )
    for module, code in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(code))
    return site


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path to install plugins in, and registries that read the plugins again."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    for registry in (MODELS, TASKS):
        monkeypatch.setattr(registry, "_entries", None)
    yield site
    for module in [m for m, value in sys.modules.items() if str(site) in str(getattr(value, "__file__", ""))]:
        del sys.modules[module]


def models(site: Path, package: str, points: dict[str, str], **modules: str) -> None:
    install(site, package, {"barkbench.models": points}, modules)


# ---- found and validated ------------------------------------------------------------------


def test_plugins_exports_what_design_lists():
    names = ["Family", "ModelSection", "Task", "TaskSection", "Dataset", "Buckets", "Model", "DecoderOnly"]
    assert sorted(plugins.__all__) == sorted(names)
    for name in names:
        assert getattr(plugins, name).__name__ == name


def test_a_family_registered_after_the_config_module_is_imported_is_known(monkeypatch):
    from barkbench.models.recurrent import RNN, RecurrentConfig

    class Config(RecurrentConfig):
        name: str = "late"

    with pytest.raises(BarkError, match="model.name must be one of .* but it is 'late'"):
        validate({"model": {"name": "late"}}, "config")
    monkeypatch.setitem(MODELS, "late", plugins.Family(config=Config, build=RNN.build))
    cfg = validate({"model": {"name": "late", "hidden_size": 5, "heads": 3}}, "config")  # heads: the rnn ignores it
    assert cfg.model.name == "late" and cfg.model.hidden_size == 5 and type(cfg.model) is Config


def test_a_config_of_the_built_schema_pickles_as_its_values():
    cfg = validate({"model": {"name": "lstm", "hidden_size": 7}, "task": {"name": "echo"}}, "config")
    again = pickle.loads(pickle.dumps(cfg))
    assert type(again) is type(cfg) and again == cfg and again.model.hidden_size == 7


def test_a_plugin_that_reads_the_registry_as_it_is_imported_sees_the_built_ins(site):
    code = """
import dataclasses
from barkbench.models import MODELS

FAMILY = dataclasses.replace(MODELS["gpt"], checks=())  # the gpt without its checks
"""
    models(site, "bark-plug", {"lax_gpt": "plug:FAMILY"}, plug=code)
    assert MODELS["lax_gpt"].config is MODELS["gpt"].config


def test_an_installed_family_and_task_answer_to_their_entry_points_names(site, tmp_path):
    install(
        site,
        "bark-extras",
        {"barkbench.models": {"tiny_rnn": "bark_extras:FAMILY"}, "barkbench.tasks": {"more_barks": "bark_tasks:TASK"}},
        {"bark_extras": FAMILY.format(name="tiny_rnn"), "bark_tasks": TASK.format(name="more_barks")},
    )
    assert list(MODELS)[-1] == "tiny_rnn" and list(TASKS)[-1] == "more_barks"
    data = tiny() | {"model": {"name": "tiny_rnn", "hidden_size": 8}, "task": {"name": "more_barks", "max_barks": 3}}
    run = train_config(data, tmp_path / "runs")
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["name"] == "tiny_rnn"
    result = cli("validate", "--config", "baby", "model.name=bogus")
    assert result.exit_code == 2 and "'tiny_rnn'" in result.stderr  # among the names a model may have


# ---- an entry point that cannot be a plugin: one sentence, exit 2 -------------------------

BAD = {
    "takes a built-in's name": (
        {"gpt": "plug:FAMILY"},
        {"plug": FAMILY.format(name="gpt")},
        "the plugin bark-plug's entry point gpt = 'plug:FAMILY' (group barkbench.models) registers model.name "
        "'gpt', which barkbench's own model gpt already has; give the entry point another name in bark-plug's "
        "pyproject.toml",
    ),
    "names a module that is not there": (
        {"mine": "not_there:FAMILY"},
        {},
        "the plugin bark-plug's entry point mine = 'not_there:FAMILY' (group barkbench.models) names the module "
        "not_there, which is not installed; point the entry point at a module of bark-plug, or reinstall bark-plug",
    ),
    "names nothing in its module": (
        {"mine": "plug:FAMLY"},
        {"plug": FAMILY.format(name="mine")},
        "the plugin bark-plug's entry point mine = 'plug:FAMLY' (group barkbench.models) names plug:FAMLY, but "
        "plug has no FAMLY; point the entry point at the Family it makes",
    ),
    "names a task where a family belongs": (
        {"mine": "plug:TASK"},
        {"plug": TASK.format(name="mine")},
        "the plugin bark-plug's entry point mine = 'plug:TASK' (group barkbench.models) names an object of type "
        "Task, not a barkbench.plugins.Family; point it at the Family its module makes",
    ),
    "names a module": (
        {"mine": "plug"},
        {"plug": FAMILY.format(name="mine")},
        "the plugin bark-plug's entry point mine = 'plug' (group barkbench.models) names the module plug, not a "
        "barkbench.plugins.Family; point it at the Family its module makes",
    ),
    "fails to import": (
        {"mine": "plug:FAMILY"},
        {"plug": "import barkbench.plugins\nraise RuntimeError('no GPU,\\n no luck')\n"},
        "the plugin bark-plug's entry point mine = 'plug:FAMILY' (group barkbench.models) fails to import "
        "(RuntimeError: no GPU, no luck); fix bark-plug, or uninstall it with pip uninstall bark-plug",
    ),
    "imports what is not installed": (
        {"mine": "plug:FAMILY"},
        {"plug": "import flash_attn\n"},
        "the plugin bark-plug's entry point mine = 'plug:FAMILY' (group barkbench.models) fails to import "
        "(ModuleNotFoundError: No module named 'flash_attn'); fix bark-plug, or uninstall it with pip uninstall "
        "bark-plug",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_an_entry_point_that_cannot_be_a_plugin_is_one_sentence_and_exit_2(site, tmp_path, case):
    points, modules, said = BAD[case]
    models(site, "bark-plug", points, **modules)
    result = cli("train", "--config", "baby", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.stderr == f"error: {said}\n"
    assert not (tmp_path / "runs").exists()


def test_two_plugins_with_one_name_are_refused_naming_both(site):
    models(site, "bark-one", {"mine": "one:FAMILY"}, one=FAMILY.format(name="mine"))
    models(site, "bark-two", {"mine": "two:FAMILY"}, two=FAMILY.format(name="mine"))
    with pytest.raises(BarkError) as caught:
        list(MODELS)
    first, second = sorted(["bark-one", "bark-two"], key=str(caught.value).index)  # in the order they were found
    assert str(caught.value) == (
        f"the plugins {first} and {second} both register model.name 'mine'; uninstall one of them, or rename its "
        "entry point"
    )


def test_a_family_whose_config_has_no_name_is_refused(site):
    code = "from barkbench.plugins import Family, TaskSection\nFAMILY = Family(config=TaskSection, build=print)\n"
    models(site, "bark-plug", {"mine": "plug:FAMILY"}, plug=code)
    with pytest.raises(
        BarkError, match=r"its Family's config has no `name` key; give it one, such as name: str = 'mine'"
    ):
        MODELS["mine"]


# ---- a family whose model does not keep the protocol: said when its config is validated ----

# A model with the rnn's network for everything but `decode`, and one whose build fails.
HALF = """
from barkbench.models.recurrent import RNN, RecurrentConfig
from barkbench.plugins import Family

class Config(RecurrentConfig):
    name: str = "half"

class NoDecode:
    def __init__(self, model):
        self.model = model
        self.teacher_forcing, self.prefill = model.teacher_forcing, model.prefill
        self.state_bytes, self.head = model.state_bytes, model.head

def build(cfg, vocab_size):
    return NoDecode(RNN.build(cfg.model_copy(update={"name": "rnn"}), vocab_size))

def broken(cfg, vocab_size):
    raise ValueError(f"no network for {cfg.hidden_size} units")

FAMILY = Family(config=Config, build=build)
BROKEN = Family(config=Config, build=broken)
"""


def test_required_is_what_the_protocol_asks_and_its_defaults_do_not_give():
    from barkbench.models.protocol import REQUIRED, Defaults, Model

    methods = [name for name, value in vars(Model).items() if callable(value) and not name.startswith("_")]
    assert REQUIRED == tuple(name for name in methods if not hasattr(Defaults, name))


def test_a_family_whose_model_lacks_a_method_the_protocol_requires_is_refused_at_validation(site, tmp_path):
    models(site, "bark-half", {"half": "half:FAMILY", "broken": "half:BROKEN"}, half=HALF)
    args = ("train", "--config", "baby", "--runs-dir", tmp_path / "runs")
    result = cli(*args, "model.name=half")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: override 'model.name=half': model.name half: its model lacks decode, which the model protocol "
        "requires (barkbench.plugins.Model); define it on NoDecode (barkbench.plugins.DecoderOnly gives "
        "teacher_forcing, prefill and decode from forward(tokens, state))\n"
    )
    result = cli(*args, "model.name=broken", "model.hidden_size=7")
    assert result.exit_code == 2
    assert "model.name broken: building its model raised ValueError: no network for 7 units" in result.stderr
    assert not (tmp_path / "runs").exists()
    assert cli("validate", "--config", "baby").exit_code == 0  # the other families are not built


# ---- a broken plugin leaves the commands that need no registry working ---------------------


def test_a_broken_plugin_leaves_help_runs_and_report_of_an_unchanged_study_working(site, tmp_path, monkeypatch):
    from barkbench import api

    study = api.compare(
        {"name": "s", "base": tiny() | {"model": {"embedding_dim": 8}}, "models": [{"name": "rnn"}]},
        runs_dir=tmp_path / "runs",
        jobs=1,
    )
    models(site, "bark-plug", {"mine": "plug:FAMILY"}, plug="raise RuntimeError('broken')\n")
    monkeypatch.setattr(MODELS, "_entries", None)  # installed after the study: read again, as a new command would
    for args in (["--help"], ["runs", tmp_path / "runs"], ["report", study.path]):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)
    result = cli("report", study.path, "--force")  # gathering again validates the configs: the registries
    assert result.exit_code == 2 and "fails to import (RuntimeError: broken)" in result.stderr


@pytest.mark.slow
def test_a_plugin_is_found_in_a_fresh_command_and_by_its_workers(tmp_path):
    """`barkbench compare --jobs 2` in a process of its own, whose spawned workers import
    barkbench afresh: each finds the plugin where it is installed (PYTHONPATH here)."""
    points = {"barkbench.models": {"tiny_rnn": "bark_extras:FAMILY"}}
    site = install(tmp_path / "site", "bark-extras", points, {"bark_extras": FAMILY.format(name="tiny_rnn")})
    study = {
        "name": "plugged",
        "base": tiny() | {"model": {"embedding_dim": 8, "hidden_size": 8, "context_length": 32}},
        "models": [{"name": "tiny_rnn"}, {"name": "gpt", "heads": 2}],
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(site), ENV.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "barkbench", "compare", "--config", "study.yaml", "--jobs", "2"]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "training 2 at a time" in done.stderr
    (directory,) = (tmp_path / "runs").iterdir()
    assert {r["model"]: r["status"] for r in results(directory)["runs"]} == {
        "tiny_rnn": "completed",
        "gpt": "completed",
    }
