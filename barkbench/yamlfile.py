"""Reading YAML: a config file, with every way it can fail said in one sentence, and any YAML text
with libyaml's parser where PyYAML has one (ten times faster than Python's: `barkbench runs`
reads every run's config.yaml)."""

from __future__ import annotations

from pathlib import Path

from barkbench.errors import BarkError


def load_yaml(text: str):
    """YAML as yaml.safe_load reads it, by libyaml where it can."""
    import yaml  # a command that reads no YAML does not pay for it

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read_yaml(path: str | Path) -> dict:
    """A YAML file that must hold a mapping; every way it can fail is a one-sentence BarkError."""
    path = Path(path)
    if not path.is_file():
        raise BarkError(f"config file '{path}' does not exist; check the path")
    import yaml

    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "it cannot be parsed"
        raise BarkError(f"config file '{path}' is not valid YAML{where} ({problem}); fix the syntax there") from None
    if data is None:
        raise BarkError(f"config file '{path}' is empty; give it at least a task and a model section")
    if not isinstance(data, dict):
        raise BarkError(
            f"config file '{path}' holds a {type(data).__name__}, not a mapping of keys; "
            "write it as `key: value` lines (task:, model:, train:, ...)"
        )
    return data
