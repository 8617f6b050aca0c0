"""Config problems in a reader's words: pydantic's errors as one plain sentence each, naming the
dotted key and the value, with the nearest known key for a misspelt one."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError

from barkbench.errors import BarkError
from barkbench.models import MODELS
from barkbench.tasks import TASKS

SECTIONS = {"task": TASKS, "model": MODELS}  # the sections picked by name, and their registries


def known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of a config, sections included ("model", "model.name", ...); a section
    picked by name has the keys of every entry of its registry."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        if not prefix and name in SECTIONS:
            entries = [entry.config for entry in SECTIONS[name].values()]
            keys += list(dict.fromkeys(k for config in entries for k in known_keys(config, f"{name}.")))
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += known_keys(field.annotation, f"{prefix}{name}.")
    return keys


def did_you_mean(key: str, known: list[str]) -> str:
    """The nearest known dotted key (by the whole path, else by its last part), or the keys
    that could have been meant in that place."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:
        leaves = {k.rsplit(".", 1)[-1]: k for k in known}
        close = [leaves[m] for m in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(leaves), n=1, cutoff=0.6)]
    if close:
        return f"; did you mean '{close[0]}'?"
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    siblings = [k for k in known if (k.rsplit(".", 1)[0] if "." in k else "") == parent]
    return f"; the keys here are: {', '.join(siblings)}"


# Pydantic's error types, in the words of a config file's reader.
PLAIN = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be text",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be above {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be below {lt}",
    "literal_error": "must be one of {expected}",
    "union_tag_invalid": "must be one of {expected_tags}",
}
NOT_A_SECTION = ("model_type", "dict_type", "model_attributes_type", "union_tag_not_found")


def error_key(loc: tuple, prefix: str = "") -> str:
    """The dotted key of a pydantic error location. In a section picked by name the location
    holds that name (("model", "gpt", "heads")), which is not part of the key."""
    parts = [str(p) for p in loc]
    if not prefix and len(parts) > 1 and parts[0] in SECTIONS:
        del parts[1]
    return prefix + ".".join(parts)


def describe_errors(
    err: ValidationError, model: type[BaseModel], prefix: str = "", blame: dict | None = None
) -> list[str]:
    """One plain sentence per pydantic error, naming the dotted key and the value; an error in a key
    that a command-line override set (blame: its dotted key -> the override) names the override."""
    known = known_keys(model, prefix)
    sentences = []
    for e in err.errors():
        key, value = error_key(e["loc"], prefix), e.get("input")
        if e["type"] == "union_tag_invalid":
            key, value = f"{key}.name", e["ctx"]["tag"]
        if e["type"] == "extra_forbidden":
            if isinstance(value, dict) and len(value) == 1:  # `trian.steps=5`: name the whole key
                key = f"{key}.{next(iter(value))}"
            said = [f"unknown key '{key}'{did_you_mean(key, known)}"]
        elif e["type"] in NOT_A_SECTION:
            said = [f"{key} must be a section of `key: value` lines, but it is {value!r}"]
        elif e["type"] == "value_error":
            said = e["msg"].removeprefix("Value error, ").split("\n")
        else:
            plain = PLAIN.get(e["type"])
            msg = plain.format(**e.get("ctx", {})) if plain else e["msg"][0].lower() + e["msg"][1:]
            said = [f"{key} {msg}, but it is {value!r}"]
            if e["type"] == "union_tag_invalid":  # a name neither barkbench nor a plugin installed here has
                said[0] += f"; a plugin's {key} is known once its package is installed here"
        for s in said:  # an override's key, or inside it, or a section's own check naming the key
            culprit = next(
                (item for k, item in (blame or {}).items() if key == k or key.startswith(k + ".") or f"'{k}'" in s),
                None,
            )
            sentences.append(f"override {culprit!r}: {s}" if culprit else s)
    return sentences


def bad_keys(err: ValidationError) -> set[str]:
    return {error_key(e["loc"]) + (".name" if e["type"] == "union_tag_invalid" else "") for e in err.errors()}


def problems_to_error(problems: list[str], source: str) -> BarkError:
    """One error for every problem: one line, or a count and a line each. A problem that names the
    override it comes from (`override 'train.steps=x': ...`) is not the file's, so an error made
    of those alone does not name the file."""
    if all(p.startswith("override ") for p in problems):
        source = "the overrides"
    if len(problems) == 1:
        return BarkError(problems[0] if source == "the overrides" else f"{source}: {problems[0]}")
    verb = "have" if source == "the overrides" else "has"
    return BarkError("\n".join([f"{source} {verb} {len(problems)} problems:", *(f"  - {p}" for p in problems)]))
