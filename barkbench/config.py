"""The run config: YAML plus dotted KEY=VALUE overrides, validated with every problem at once.

The `task:` and `model:` sections are each one of their registry's schemas, picked by `name`
(a task's keys are its module's, a model family's its package's). A section may carry keys
that belong to another entry of its registry (an RNN's `positional`): they are dropped, so
one config can switch `model.name` by an override. Checks that relate several keys (heads
dividing the width, a sequence fitting the context) come from the task and the model family
and run outside pydantic, so they still run when some other key is wrong.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from barkbench.config_errors import bad_keys, describe_errors, problems_to_error
from barkbench.errors import BarkError
from barkbench.models import DEFAULT_MODEL, MODELS, family_of
from barkbench.models.family import ModelSection
from barkbench.schema import Section
from barkbench.tasks import DEFAULT_TASK, TASKS, task_of
from barkbench.tasks.common import TaskSection
from barkbench.vocab import encode
from barkbench.yamlfile import load_yaml, read_yaml


def one_of(configs: dict, default: str):
    """A section that is one of these schemas (name -> its section class), picked by its `name`
    (default: default)."""
    fields = {name: set(config.model_fields) for name, config in configs.items()}
    every = set().union(*fields.values())

    def own_keys(value):
        if not isinstance(value, dict):
            return value  # pydantic says it is not a section
        value = {"name": default, **value}
        if value["name"] not in configs:
            return value  # pydantic names the unknown name
        return {k: v for k, v in value.items() if k in fields[value["name"]] or k not in every}

    variants = tuple(Annotated[config, Tag(name)] for name, config in configs.items())
    discriminator = Discriminator(lambda v: v.get("name") if isinstance(v, dict) else getattr(v, "name", None))
    return Annotated[Union[variants], discriminator, BeforeValidator(own_keys)]


class TrainConfig(Section):
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.003, gt=0)
    warmup_steps: Optional[int] = Field(None, ge=0, description="default: 5% of steps")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="the cosine decays to lr x this")
    weight_decay: float = Field(0.01, ge=0)  # light: these models are tiny and the data endless
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(200, ge=1)
    stop_at: Optional[float] = Field(
        None,
        gt=0,
        le=1,
        description="stop at the first evaluation whose validation accuracy of the answer's content reaches it",
    )
    # 64: an evaluation's batches then stay in the cache; 256 long sequences at once took a GPT
    # half as long again on memory_map's test set, and no family measured was faster with them
    eval_batch_size: int = Field(64, ge=1)
    checkpoint_every: Optional[int] = Field(None, ge=1, description="default: eval_every")
    keep_checkpoints: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _resolve(self, info):
        fit = max(1, self.steps // 5)
        if self.eval_every > fit:  # fewer than 5 points on the curves
            if info.context is not None:
                info.context.setdefault("notes", []).append(
                    f"train.eval_every ({self.eval_every}) is more than train.steps / 5 ({self.steps} / 5), "
                    f"so the curves would have fewer than 5 points; lowered to {fit}"
                )
            self.eval_every = fit
        self.warmup_steps = max(1, self.steps // 20) if self.warmup_steps is None else self.warmup_steps
        self.checkpoint_every = self.checkpoint_every or self.eval_every
        return self


class SampleConfig(Section):
    prompt: Optional[str] = Field(None, description="default: the task's own prompt")
    num_samples: int = Field(8, ge=0)
    max_new_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.7, ge=0, description="0 means greedy")
    top_k: Optional[int] = Field(None, ge=1)


class LogConfig(Section):
    tensorboard: bool = Field(False, description="also write the run's scalars to <run>/tensorboard/")

    @field_validator("tensorboard")
    @classmethod
    def _installed(cls, tensorboard):
        if tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "log.tensorboard is true but TensorBoard is not installed; install it with "
                "pip install 'barkbench[tensorboard]', or set log.tensorboard=false"
            )
        return tensorboard


class RunConfig(Section):
    """A training config. Its `task:` and `model:` sections are each one of their registry's
    schemas, and a plugin adds to a registry, so the schema that validates a config is built from
    the registries as they are when one is validated (schema()); RunConfig.model_validate uses it.
    """

    name: Optional[str] = Field(None, description="the run directory's name starts with it")
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # Fixed by the config, not by the machine or the runs beside it: the thread count changes how
    # float sums are split, so a run's figures are the same under any --jobs and any launcher.
    threads: int = Field(1, ge=1, description="torch threads for this run; more are faster, with other last digits")
    task: TaskSection  # in schema(): one of TASKS' sections
    model: ModelSection  # in schema(): one of MODELS' sections
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    eval: Optional[dict] = Field(None, description="task keys the validation set uses instead, e.g. {max_gap: 256}")
    _notes: list = PrivateAttr(default_factory=list)  # what validation changed, to be said (notes())

    @classmethod
    def model_validate(cls, obj, **options):
        if cls is RunConfig:  # the schema with the registries' sections
            return schema().model_validate(obj, **options)
        return super().model_validate(obj, **options)

    def __reduce__(self):
        # pickled as its values: the class that schema() built is not found by its name
        return RunConfig.model_validate, (self.model_dump(),)

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
        if device in ("cuda", "mps"):
            import torch  # only for a config that asks for an accelerator

            present = torch.cuda.is_available() if device == "cuda" else torch.backends.mps.is_available()
            if not present:
                raise ValueError(
                    f"device is {device!r} but this machine has no {device.upper()} device; "
                    "use device=auto or device=cpu"
                )
        return device

    @field_validator("eval")
    @classmethod
    def _task_keys(cls, eval, info):
        """`eval` holds keys of the run's own task; unless a task key is wrong already."""
        task = info.data.get("task")
        settled = not any(key.split(".")[0] == "task" for key in (info.context or {}).get("bad", ()))
        if eval is not None and task is not None and settled:
            schema = task_of(task).config
            try:
                schema.model_validate({**task.model_dump(), **eval})
            except ValidationError as err:
                raise ValueError("\n".join(describe_errors(err, schema, "eval."))) from None
        return eval

    @model_validator(mode="after")
    def _default_name(self):
        self.name = self.name or f"{self.model.name}-{self.task.name}"
        return self

    @property
    def val_task(self):
        """The task the validation set is drawn from: the training task, with `eval` applied."""
        if not self.eval:
            return self.task
        return task_of(self.task).config.model_validate({**self.task.model_dump(), **self.eval})

    @property
    def vocab(self) -> tuple[str, ...]:
        """The run's words: its training task's (an `eval` may not change them; see CHECKS)."""
        return task_of(self.task).vocab(self.task)

    def longest_sequence(self) -> int:
        """The longest sequence of the training or validation task, in tokens."""
        return max(task_of(t).longest(t) for t in (self.task, self.val_task))


def schema() -> type[RunConfig]:
    """RunConfig with its task: and model: sections the registries' entries as they are now:
    built the first time a config is validated, and again once a registry has changed (a family
    registered after this module was imported)."""
    return _schema(
        tuple((name, task.config) for name, task in TASKS.items()),
        tuple((name, family.config) for name, family in MODELS.items()),
    )


@functools.cache
def _schema(tasks: tuple, models: tuple) -> type[RunConfig]:
    tasks, models = dict(tasks), dict(models)
    return create_model(
        "RunConfig",
        __base__=RunConfig,
        __module__=__name__,
        task=(one_of(tasks, DEFAULT_TASK), Field(default_factory=tasks[DEFAULT_TASK])),
        model=(one_of(models, DEFAULT_MODEL), Field(default_factory=models[DEFAULT_MODEL])),
    )


# ---- checks that are not about one task or model family -----------------------------------


def _prompt_words(c: RunConfig):
    if c.sample.prompt is not None:
        try:
            encode(c.sample.prompt, c.vocab)
        except BarkError as err:
            return f"sample.prompt: {err}"


def _eval_keeps_vocab(c: RunConfig):
    if c.eval and task_of(c.val_task).vocab(c.val_task) != c.vocab:
        return (
            f"eval ({c.eval}) changes the task's vocabulary ({len(c.vocab)} words to "
            f"{len(task_of(c.val_task).vocab(c.val_task))}), but a model's embedding and head are sized by the "
            "training task's; keep the keys that set the vocabulary as they are in task:"
        )


CHECKS = [(("task", "sample.prompt"), _prompt_words), (("task", "eval"), _eval_keeps_vocab)]


def _on_eval(check) -> tuple:
    """A task's check, run on the task the validation and test sets are drawn from: `eval` may
    set one key of a pair the check keeps in order (eval: {min_gap: 300} over max_gap: 256)."""
    keys, of_task = check

    def on_eval(c):
        if c.eval and (message := of_task(c.model_copy(update={"task": c.val_task}))):
            return f"eval {c.eval} makes the validation and test sets' task invalid: {message}, in eval"

    return (*keys, "eval"), on_eval


def checks_for(cfg: RunConfig) -> list:
    """The checks that apply to a config: the general ones, its task's (on the training task and
    on eval's) and its model family's."""
    task_checks = list(task_of(cfg.task).checks)
    return CHECKS + task_checks + [_on_eval(check) for check in task_checks] + list(family_of(cfg.model).checks)


# ---- reading, overriding and reporting ----------------------------------------------------


def apply_overrides(data: dict, overrides: list[str]) -> list[str]:
    """Set each dotted KEY=VALUE in data (values parsed as YAML); return the problems found."""
    problems = []
    for item in overrides:
        key, eq, text = item.partition("=")
        if not eq or not key or any(not part for part in key.split(".")):
            problems.append(f"override {item!r} is not KEY=VALUE; write it like train.steps=100")
            continue
        try:
            value = load_yaml(text, f"override {item!r}") if text else ""
        except yaml.YAMLError:
            value = text  # a plain string; the validator decides whether it fits the key
        except BarkError as err:
            problems.append(str(err))
            continue
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


def validate(data: dict, source: str, problems: list[str] = (), overrides: list[str] = ()) -> RunConfig:
    """A RunConfig from a mapping, or one BarkError listing these problems and the mapping's; a
    problem with a key that one of `overrides` set names that override rather than the file."""
    problems = list(problems)
    bad: set[str] = set()
    given = {item.partition("=")[0]: item for item in overrides if "=" in item}
    while True:
        context = {"bad": bad, "notes": []}
        try:
            cfg = RunConfig.model_validate(_without(data, bad), context=context)
            break
        except ValidationError as err:
            # Report, then drop the keys reported and try again with defaults in their place: the
            # checks below run on what is valid, and a section's own validators on its other keys.
            problems += describe_errors(err, RunConfig, blame=given)
            bad |= bad_keys(err)
    for keys, check in checks_for(cfg):
        if not any(related(k, b) for k in keys for b in bad) and (message := check(cfg)):
            blamed = [item for key, item in given.items() if any(related(key, k) for k in keys)]
            problems += [f"override {blamed[0]!r}: {line}" if blamed else line for line in message.split("\n")]
    if problems:
        raise problems_to_error(problems, source)
    cfg._notes = context["notes"]
    return cfg


def related(a: str, b: str) -> bool:
    """Whether two dotted keys are one key, or one is inside the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def notes(cfg: RunConfig) -> list[str]:
    """What validating the config changed in it, in sentences to show (eval_every lowered to fit)."""
    return list(cfg._notes)


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


def load_config(config: str | Path | Mapping, overrides: list[str] = ()) -> RunConfig:
    """Read a config file (or take a mapping, as a config file reads), apply overrides, validate;
    report every problem in one BarkError."""
    given = isinstance(config, Mapping)
    data, source = (copy.deepcopy(dict(config)), "the config mapping") if given else (read_yaml(config), str(config))
    if "models" in data and "model" not in data:
        again = "barkbench.compare()" if given else f"barkbench compare --config {shlex.quote(str(config))}"
        named = source if given else f"'{source}'"
        raise BarkError(f"{named} is a compare config (it lists models:), not a training config; run it with: {again}")
    return validate(data, source, apply_overrides(data, list(overrides)), list(overrides))


def to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(), sort_keys=False)
