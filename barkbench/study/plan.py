"""Planning a study: the compare config's schema, its expansion into one combination per
model x seed x sweep value x tune value, the combinations' names, and the study directory's
study.yaml.
(Running them: barkbench/study/launch.py; reporting over them: barkbench/study/findings.py.)

A study directory holds `study.yaml` (the compare config with its base written inline and every
override applied to it, so it needs nothing outside itself), one run directory per
combination, and the report. A combination is matched to its run directory by the run's
config `name`, which says what the run is ("lstm-s1", "rnn-s0-max_gap32"): that is how
`--resume` and `barkbench report` find the runs again.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Mapping
from itertools import product
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from barkbench.config import RunConfig, apply_overrides, notes, validate
from barkbench.config_errors import describe_errors, problems_to_error
from barkbench.errors import BarkError
from barkbench.locate import config_path
from barkbench.rundir import create_run_dir, write_atomic
from barkbench.yamlfile import read_yaml


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("compare", description="the study directory's name starts with it")
    base: Any = Field(None, validate_default=True, description="a training config path or an inline mapping")
    models: list[dict[str, Any]] = Field(None, validate_default=True, description="each overrides base's model")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted key -> value, applied to base")
    seeds: list[Annotated[int, Field(ge=0)]] = Field([0], min_length=1)
    sweep: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values; one run each")
    tune: dict[str, list[Any]] = Field(
        default_factory=dict, description="dotted key -> values; every run at each, the best chosen on validation"
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name):
        return RunConfig._plain_name(name)

    @field_validator("base")
    @classmethod
    def _path_or_mapping(cls, base):
        if not isinstance(base, (str, dict)):
            raise ValueError(
                "base must be the path of a training config (relative to the compare file), such as "
                f"base: ../echo_gpt.yaml, or an inline mapping with task:, model:, train: sections; it is {base!r}"
            )
        return base

    @field_validator("models", mode="before")
    @classmethod
    def _some_models(cls, models):
        if not models:
            raise ValueError("models must list at least one model section, such as models: [{name: rnn}, {name: gpt}]")
        return models

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds):
        if len(set(seeds)) < len(seeds):
            raise ValueError(f"seeds ({seeds}) repeats a seed; each seed trains one run per model, so list each once")
        return seeds

    @field_validator("sweep", "tune", mode="before")
    @classmethod
    def _grid_lists(cls, grid, info):
        if not isinstance(grid, dict):
            return grid  # pydantic names the type problem
        section, problems = info.field_name, []
        for key, values in grid.items():
            keys = key.split(",")
            if not isinstance(values, list) or not values:
                problems.append(
                    f"{section}.{key} must be a non-empty list of values, such as [32, 128], but it is {values!r}"
                )
            elif len(keys) > 1 and any(not isinstance(v, list) or len(v) != len(keys) for v in values):
                problems.append(
                    f"{section}.{key} sets {len(keys)} keys together, so each of its values must be a list of "
                    f"{len(keys)}, such as {[[8] * len(keys), [64] * len(keys)]}, but it is {values!r}"
                )
            problems += [
                f"{section} cannot set {k!r}: the study names its runs, and seeds: lists the seeds"
                for k in keys
                if k in ("name", "seed")
            ]
        if problems:
            raise ValueError("; ".join(problems))
        return grid

    @model_validator(mode="after")
    def _sweep_or_tune(self):
        both = set(parts(self.sweep)) & set(parts(self.tune))
        if both:
            raise ValueError(
                f"{', '.join(sorted(both))} is both swept and tuned; a key is either reported for each value "
                "(sweep) or chosen on validation (tune)"
            )
        return self


# ---- planning: the compare config, expanded and validated ---------------------------------


def plan(data: dict, source: str, where: Path, overrides: list[str] = ()) -> tuple[dict, list[dict]]:
    """The resolved compare config (base inline) and its combinations, each with its validated
    RunConfig; or one BarkError naming every problem in the compare config, its base and its runs."""
    if "models" not in data and {"model", "task", "train"} & set(data):
        raise BarkError(
            f"'{source}' is a training config (it has a model, task or train section, and no models: list); "
            f"name it as base: in a compare config, or train it with: barkbench train --config {shlex.quote(source)}"
        )
    messages = []
    try:
        spec = CompareConfig.model_validate(data)
    except ValidationError as err:
        messages.append(str(problems_to_error(describe_errors(err, CompareConfig), source)))
        spec = None

    base_text = data.get("base")
    base, base_cfg = None, None
    if isinstance(base_text, dict):
        base, base_source = copy.deepcopy(base_text), f"{source} (base)"
    elif isinstance(base_text, str):
        try:
            path = config_path(Path(base_text), where)  # a path relative to this file, or a shipped name
            base_source, base = str(path), read_yaml(path)
        except BarkError as err:
            messages.append(f"{source}: base: {err}")
        if isinstance(base, dict) and "models" in base:
            messages.append(f"{source}: base: '{base_source}' is a compare config; base names a training config")
            base = None
    if base is not None:
        # the file's overrides first, then the command line's
        written = data.get("overrides") if isinstance(data.get("overrides"), dict) else {}
        given = as_overrides(written) + list(overrides)
        try:
            base_cfg = validate(base, base_source, apply_overrides(base, given), list(overrides))
        except BarkError as err:
            messages.append(str(err))
    if spec and base_cfg:
        messages += repeated_models(spec.models, base_cfg.model.name, source)

    # The runs are checked only on a sound compare config and base, so each problem is said once.
    combos = expand(spec, base, base_cfg) if spec and base_cfg and not messages else []
    failed: set = set()
    for combo in combos:
        key = (combo["label"], json.dumps(combo["sweep"]))
        if key in failed:  # the same problem again for another seed
            continue
        try:
            combo["config"] = validate(combo.pop("data"), f"run {combo['name']}", combo.pop("problems"))
        except BarkError as err:
            failed.add(key)
            messages.append(str(err))
    if messages:
        raise BarkError("\n".join(messages))
    # the overrides are applied to base already: study.yaml holds the base as the runs saw it
    resolved = {"name": spec.name, "base": base, **spec.model_dump(include={"models", "seeds", "sweep", "tune"})}
    return resolved, combos


def repeated_models(models: list[dict], default: str, source: str) -> list[str]:
    """A model entry listed twice (its name defaulting to the base's) would train the same runs twice."""
    named = [{"name": default, **entry} for entry in models]
    return [
        f"{source}: models lists {models[i]} twice (entries {named.index(entry) + 1} and {i + 1}), which would "
        "train the same runs twice; list it once"
        for i, entry in enumerate(named)
        if named.index(entry) < i
    ]


def expand(spec: CompareConfig, base: dict, base_cfg: RunConfig) -> list[dict]:
    """One combination per model entry x seed x sweep value x tune value: its name, label, seed,
    sweep and tune values, its group (the label and sweep values: what is reported, over seeds,
    at the tune value chosen), the training config mapping and the problems found building it."""
    labels = model_labels(spec.models, base_cfg.model.name)
    grid = {**spec.sweep, **spec.tune}
    short = short_names(list(grid))
    combos = []
    for entry, label in zip(spec.models, labels):
        for seed in spec.seeds:
            for values in product(*grid.values()):
                settings = dict(zip(grid, values))
                data = copy.deepcopy(base)
                model = data.get("model") if isinstance(data.get("model"), dict) else {}
                data["model"] = {**model, **entry}
                data["seed"] = seed
                data["name"] = f"{label}-s{seed}" + "".join(f"-{setting(short[k], v)}" for k, v in settings.items())
                sweep = {k: v for k, v in settings.items() if k in spec.sweep}
                combos.append(
                    {
                        "name": data["name"],
                        "label": label,
                        "group": " ".join([label] + [f"{short[k]}={v}" for k, v in sweep.items()]),
                        "seed": seed,
                        "sweep": sweep,
                        "tune": {k: v for k, v in settings.items() if k in spec.tune},
                        "data": data,
                        "problems": apply_overrides(data, as_overrides(settings)),
                    }
                )
    return combos


def parts(grid: dict) -> list[str]:
    """The dotted keys a sweep or tune sets: "task.min_gap,task.max_gap" sets two."""
    return [k for key in grid for k in key.split(",")]


def short_names(keys: list[str]) -> dict[str, str]:
    """Each grid key by its last parts ("max_gap", "min_gap,max_gap"), unless two would look alike."""
    leaves = {key: ",".join(k.rsplit(".", 1)[-1] for k in key.split(",")) for key in keys}
    unique = len(set(leaves.values())) == len(leaves)
    return leaves if unique else {key: key for key in keys}


def as_overrides(values: dict) -> list[str]:
    """Dotted key -> value as KEY=VALUE overrides (a key of several parts sets each to its own
    value); JSON is YAML, so each value arrives as written."""
    pairs = [
        (k, v)
        for key, value in values.items()
        for k, v in (zip(key.split(","), value) if "," in key else [(key, value)])
    ]
    return [f"{key}={json.dumps(value)}" for key, value in pairs]


def model_labels(models: list[dict], default: str) -> list[str]:
    """A label per model entry: its model name, plus the settings that tell apart entries that
    share a name ("rnn-hidden_size32", "rnn-hidden_size64")."""
    names = [entry.get("name", default) for entry in models]
    labels = []
    for entry, name in zip(models, names):
        twins = [m for m, n in zip(models, names) if n == name]
        differing = sorted({k for m in twins for k in m if k != "name" and len({repr(t.get(k)) for t in twins}) > 1})
        labels.append(name + "".join(f"-{setting(k, entry[k])}" for k in differing if k in entry))
    # entries that still look alike (the same settings twice) get their position
    return [f"{label}-{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def setting(key: str, value) -> str:
    """A key and its value as they can appear in a directory name: "max_gap32", "attention_none",
    "min_gap8-max_gap8" for keys set together."""
    if "," in key:
        return "-".join(setting(k, v) for k, v in zip(key.split(","), value))
    sep = "" if isinstance(value, (int, float)) else "_"
    return key + sep + re.sub(r"[^A-Za-z0-9._-]+", "_", str(value))


def start_study(path: Path | Mapping, overrides: list[str], runs_dir: Path, say=lambda line: None) -> Path:
    """Validate a compare config (a file, or a mapping as one reads, whose base: is relative to the
    current directory) and its runs, and say what validating changed in them; only then create the
    study directory and study.yaml."""
    if isinstance(path, Mapping):
        spec, combos = plan(copy.deepcopy(dict(path)), "the compare config mapping", Path("."), overrides)
        path = "a mapping given to barkbench.compare()"
    else:
        spec, combos = plan(read_yaml(path), str(path), path.parent, overrides)
    for line in combination_notes(combos):
        say(line)
    study = create_run_dir(Path(runs_dir), spec["name"])
    header = (
        f"# The study as run: {path}, its base written inline with the overrides applied"
        + (f" (on the command line: {' '.join(overrides)})" if overrides else "")
        + f".\n# Resume it with: barkbench compare --resume {shlex.quote(str(study))}\n"
    )
    write_atomic(study / "study.yaml", header + yaml.safe_dump(spec, sort_keys=False))
    return study


def combination_notes(combos: list[dict]) -> list[str]:
    """What validation changed in the combinations' configs, each said once."""
    return list(dict.fromkeys(line for combo in combos for line in notes(combo["config"])))


def load_study(study: Path) -> list[dict]:
    """The combinations of a study directory, from its study.yaml."""
    return plan(read_yaml(study_file(study)), str(study / "study.yaml"), study)[1]


def study_file(study: Path) -> Path:
    """A study directory's study.yaml, or the error that the directory is not a study's."""
    if not (study / "study.yaml").exists():
        raise BarkError(
            f"{study} is not a barkbench study directory (it has no study.yaml); "
            "give a directory that `barkbench compare` created"
        )
    return study / "study.yaml"


def study_runs(study: Path) -> dict[str, Path]:
    """The study's run directories by their config name (the newest one if a name repeats). A run
    whose config.yaml is damaged is known by its directory's name, `<name>-<date>-<time>-<hex>`,
    and gets its config.yaml again from study.yaml when it is resumed (study/job.py)."""
    runs = sorted(study.glob("*/config.yaml"), key=lambda p: p.stat().st_mtime)
    return {run_name(p): p.parent for p in runs}


def run_name(config: Path) -> str:
    try:
        return read_yaml(config).get("name")
    except BarkError:
        return re.sub(r"-\d{8}-\d{6}-[0-9a-f]{4}$", "", config.parent.name)
