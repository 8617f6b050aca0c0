"""The run config: YAML plus dotted KEY=VALUE overrides, validated with every problem at once.

Each section is a pydantic model that forbids unknown keys and fills in defaults that
depend on other keys. Checks that relate several keys (heads dividing the width, a
sequence fitting the context) live in CHECKS, outside pydantic, so they still run when
some other key is wrong: every problem in a config is reported in one go.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Literal, Optional

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from barkbench.errors import BarkError
from barkbench.models import MODELS
from barkbench.tasks import TASKS, encode, longest_sequence


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskConfig(Section):
    name: Literal[tuple(TASKS)] = "barks"
    min_barks: Optional[int] = Field(None, ge=1, description="barks and cycle; default per task")
    max_barks: Optional[int] = Field(None, ge=1)
    message_length: int = Field(8, ge=1, description="echo only")
    min_gap: int = Field(0, ge=0, description="echo only")
    max_gap: int = Field(128, ge=0, description="echo only")
    train_size: int = Field(20000, ge=1)
    val_size: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _resolve(self):
        # barks: the original BarkGPT corpus; cycle: the long BarkRNN collapse experiment.
        default = (100, 200) if self.name == "cycle" else (2, 10)
        self.min_barks = default[0] if self.min_barks is None else self.min_barks
        self.max_barks = default[1] if self.max_barks is None else self.max_barks
        return self


class ModelConfig(Section):
    name: Literal[tuple(MODELS)] = "gpt"
    embedding_dim: int = Field(64, ge=1, description="token embedding size; for gpt, the model width")
    hidden_size: int = Field(64, ge=1, description="rnn, lstm, gru: the recurrent state size")
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1, description="gpt only")
    ffn_dim: Optional[int] = Field(None, ge=1, description="gpt only; default 4 x embedding_dim")
    context_length: int = Field(512, ge=1, description="gpt only: longest sequence it accepts")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="on activations and attention weights")
    attention: Optional[Literal["mha", "wrapper", "single", "simple", "none"]] = Field(
        None, description="default: mha for gpt, none for rnn, lstm and gru"
    )
    positional: Literal["learned", "sinusoidal", "rope", "none"] = Field("learned", description="gpt only")

    @model_validator(mode="after")
    def _resolve(self):
        self.ffn_dim = self.ffn_dim or 4 * self.embedding_dim
        self.attention = self.attention or ("mha" if self.name == "gpt" else "none")
        return self

    @property
    def width(self) -> int:
        """The size of the vectors attention works on: the GPT's width, or an RNN's state."""
        return self.embedding_dim if self.name == "gpt" else self.hidden_size

    @property
    def heads_used(self) -> int:
        return self.heads if self.attention in ("mha", "wrapper") else 1


class TrainConfig(Section):
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.003, gt=0)
    warmup_steps: Optional[int] = Field(None, ge=0, description="default: 5% of steps")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="the cosine decays to lr x this")
    weight_decay: float = Field(0.01, ge=0)  # light: these models are tiny and the data endless
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(200, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    checkpoint_every: Optional[int] = Field(None, ge=1, description="default: eval_every")
    keep_checkpoints: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _resolve(self):
        self.warmup_steps = max(1, self.steps // 20) if self.warmup_steps is None else self.warmup_steps
        self.checkpoint_every = self.checkpoint_every or self.eval_every
        return self


class SampleConfig(Section):
    prompt: Optional[str] = Field(None, description="default: the task's own prompt")
    num_samples: int = Field(8, ge=0)
    max_new_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.7, ge=0, description="0 means greedy")
    top_k: Optional[int] = Field(None, ge=1)

    @field_validator("prompt")
    @classmethod
    def _known_words(cls, prompt):
        if prompt is not None:
            try:
                encode(prompt)
            except BarkError as err:
                raise ValueError(f"sample.prompt: {err}") from None
        return prompt


class RunConfig(Section):
    name: Optional[str] = Field(None, description="the run directory's name starts with it")
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    eval: Optional[dict] = Field(None, description="task keys the validation set uses instead, e.g. {max_gap: 256}")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name):
        if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError(
                f"name ({name!r}) must be a plain word of letters, digits, '.', '_' or '-' "
                "(it starts the run directory's name), like gpt-echo"
            )
        return name

    @field_validator("device")
    @classmethod
    def _device_exists(cls, device):
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device is 'cuda' but this machine has no CUDA device; use device=auto or device=cpu")
        if device == "mps" and not torch.backends.mps.is_available():
            raise ValueError("device is 'mps' but this machine has no MPS device; use device=auto or device=cpu")
        return device

    @field_validator("eval")
    @classmethod
    def _task_keys(cls, eval):
        if eval is not None:
            try:
                TaskConfig.model_validate(eval)
            except ValidationError as err:
                raise ValueError("\n".join(describe_errors(err, TaskConfig, "eval."))) from None
        return eval

    @property
    def val_task(self) -> TaskConfig:
        """The task the validation set is drawn from: the training task, with `eval` applied."""
        if not self.eval:
            return self.task
        return TaskConfig.model_validate({**self.task.model_dump(), **self.eval})

    @model_validator(mode="after")
    def _default_name(self):
        self.name = self.name or f"{self.model.name}-{self.task.name}"
        return self


# ---- checks that relate several keys: (the keys they read, the check) ---------------------


def _heads_divide_width(c: RunConfig):
    m = c.model
    key = "model.embedding_dim" if m.name == "gpt" else "model.hidden_size"
    if m.attention != "none" and m.width % m.heads_used:
        nearest = min((h for h in range(1, m.width + 1) if m.width % h == 0), key=lambda h: abs(h - m.heads))
        return (
            f"model.heads ({m.heads}) does not divide {key} ({m.width}) for model.attention {m.attention}; "
            f"use a heads value that divides it, such as {nearest}"
        )
    if m.name == "gpt" and m.positional == "rope" and m.attention != "none" and (m.width // m.heads_used) % 2:
        return (
            f"model.positional rope rotates pairs of features, but each head has {m.width // m.heads_used} "
            f"(model.embedding_dim {m.width} / {m.heads_used} heads), an odd number; pick sizes that make it even"
        )


def _sequences_fit_context(c: RunConfig):
    longest = max(longest_sequence(c.task), longest_sequence(c.val_task))
    if c.model.name == "gpt" and longest > c.model.context_length:
        return (
            f"task sequences reach {longest} tokens but model.context_length is {c.model.context_length}; "
            f"raise model.context_length to at least {longest} or shorten the task"
        )


def _prompt_fits_context(c: RunConfig):
    length = len(c.sample.prompt.split()) if c.sample.prompt else 0
    if c.model.name == "gpt" and length > c.model.context_length:
        return f"sample.prompt has {length} tokens but model.context_length is {c.model.context_length}; shorten the prompt"


def _ordered(low: str, high: str):
    def check(c: RunConfig):
        lo, hi = (getattr(c.task, k.split(".")[1]) for k in (low, high))
        if lo > hi:
            return f"{low} ({lo}) is above {high} ({hi}); swap them"

    return check


CHECKS = [
    (("task.min_barks", "task.max_barks"), _ordered("task.min_barks", "task.max_barks")),
    (("task.min_gap", "task.max_gap"), _ordered("task.min_gap", "task.max_gap")),
    (
        (
            "model.name",
            "model.heads",
            "model.embedding_dim",
            "model.hidden_size",
            "model.attention",
            "model.positional",
        ),
        _heads_divide_width,
    ),
    (
        (
            "model.name",
            "model.context_length",
            "task.name",
            "task.message_length",
            "task.max_gap",
            "task.max_barks",
            "eval",
        ),
        _sequences_fit_context,
    ),
    (("model.name", "model.context_length", "sample.prompt"), _prompt_fits_context),
]


# ---- reading, overriding and reporting ----------------------------------------------------


def read_yaml(path: str | Path) -> dict:
    """A YAML file that must hold a mapping; every way it can fail is a one-sentence BarkError."""
    path = Path(path)
    if not path.is_file():
        raise BarkError(f"config file '{path}' does not exist; check the path")
    try:
        data = yaml.safe_load(path.read_text())
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


def apply_overrides(data: dict, overrides: list[str]) -> list[str]:
    """Set each dotted KEY=VALUE in data (values parsed as YAML); return the problems found."""
    problems = []
    for item in overrides:
        key, eq, text = item.partition("=")
        if not eq or not key or any(not part for part in key.split(".")):
            problems.append(f"override {item!r} is not KEY=VALUE; write it like train.steps=100")
            continue
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text  # a plain string; the validator decides whether it fits the key
        if isinstance(value, (dict, list)) and not text.lstrip().startswith(("{", "[")):
            value = text  # `sample.prompt=User: speak` is text, not the mapping {User: speak}
        *parents, leaf = key.split(".")
        node = data
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(
                    f"override {item!r}: {'.'.join(parents[: i + 1])} is not a section, so it has no key {leaf!r}"
                )
                break
        else:
            node[leaf] = value
    return problems


def known_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key of a config, sections included ("model", "model.name", ...)."""
    keys = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        keys.append(prefix + name)
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += known_keys(sub, f"{prefix}{name}.")
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
    "string_type": "must be text",
    "bool_parsing": "must be true or false",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be above {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be below {lt}",
    "literal_error": "must be one of {expected}",
}


def describe_errors(err: ValidationError, model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """One plain sentence per pydantic error, naming the dotted key and the value."""
    known = known_keys(model, prefix)
    sentences = []
    for e in err.errors():
        key = prefix + ".".join(str(p) for p in e["loc"])
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            if isinstance(value, dict) and len(value) == 1:  # `trian.steps=5`: name the whole key
                key = f"{key}.{next(iter(value))}"
            sentences.append(f"unknown key '{key}'{did_you_mean(key, known)}")
        elif e["type"] in ("model_type", "dict_type", "model_attributes_type"):
            sentences.append(f"{key} must be a section of `key: value` lines, but it is {value!r}")
        elif e["type"] == "value_error":
            sentences += e["msg"].removeprefix("Value error, ").split("\n")
        else:
            plain = PLAIN.get(e["type"])
            msg = plain.format(**e.get("ctx", {})) if plain else e["msg"][0].lower() + e["msg"][1:]
            sentences.append(f"{key} {msg}, but it is {value!r}")
    return sentences


def problems_to_error(problems: list[str], source: str) -> BarkError:
    lines = [f"{source} has {len(problems)} problem{'s' * (len(problems) > 1)}:"] if len(problems) > 1 else []
    lines += [p if len(problems) == 1 else f"  - {p}" for p in problems]
    if len(problems) == 1:
        lines[0] = f"{source}: {lines[0]}"
    return BarkError("\n".join(lines))


def validate(data: dict, source: str, problems: list[str] = ()) -> RunConfig:
    """A RunConfig from a mapping, or one BarkError listing these problems and the mapping's."""
    problems = list(problems)
    bad: set[str] = set()
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        problems += describe_errors(err)
        bad = {".".join(str(p) for p in e["loc"]) for e in err.errors()}
        # Run the checks on what is valid (defaults standing in for the rest), skipping any
        # check that reads a key already reported.
        cfg = RunConfig.model_validate(_without(data, bad))
    for keys, check in CHECKS:
        if not any(k == b or k.startswith(b + ".") for k in keys for b in bad):
            problems += [message] if (message := check(cfg)) else []
    if problems:
        raise problems_to_error(problems, source)
    return cfg


def _without(data: dict, bad: set[str]) -> dict:
    """A copy of data without the keys at these dotted paths."""
    data = copy.deepcopy(data)
    for path in bad:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return data


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a config file, apply overrides, validate; report every problem in one BarkError."""
    data = read_yaml(path)
    return validate(data, str(path), apply_overrides(data, list(overrides)))


def to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(), sort_keys=False)


def pick_device(name: str) -> torch.device:
    """auto: CUDA if present, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    return torch.device(name)
