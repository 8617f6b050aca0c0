"""The tasks, one module each, found by name in TASKS (and a plugin's, by its entry point:
barkbench/registry.py).

A task module makes a `Task` (barkbench/tasks/common.py): its config section, how it makes
data, its Bayes floor, the longest sequence it makes, its vocabulary, its chance level, how
its results are bucketed, how its samples are judged, and what to mark in pictures. The rest
of barkbench asks the task these things and never asks for its name; so a new task is one
module here and one line in BUILT_IN.

Which picture summarises a study follows from these answers (barkbench/study/findings.py):
a task with buckets is drawn as accuracy against its bucket, one with sample figures (cycle)
as bars of those, any other as bars of its final figures.
"""

from __future__ import annotations

from barkbench.registry import Registry
from barkbench.tasks import barks, copying, cycle, echo, induction, mqar, reversal, selective_copy
from barkbench.tasks.common import Splits, Task, stream
from barkbench.vocab import EOS

BUILT_IN: dict[str, Task] = {
    "barks": barks.TASK,
    "cycle": cycle.TASK,
    "echo": echo.TASK,
    "copy": copying.TASK,
    "reverse": reversal.TASK,
    "mqar": mqar.TASK,
    "selective_copy": selective_copy.TASK,
    "induction": induction.TASK,
}
# Those, then the plugins installed under the entry-point group barkbench.tasks (barkbench/registry.py)
TASKS = Registry("task", Task, BUILT_IN)
DEFAULT_TASK = "barks"  # what a config without a `task.name` gets


def task_of(task_cfg) -> Task:
    return TASKS[task_cfg.name]


def make_splits(task_cfg, seed: int, eval_cfg=None) -> Splits:
    """The training, validation and test sets; the same seed gives the same data.

    eval_cfg, when given, is the task config the validation and test sets are drawn from
    instead (a config's `eval`: to measure beyond what was trained).
    """
    eval_cfg = eval_cfg or task_cfg
    task = task_of(task_cfg)
    return Splits(
        train=task.make(task_cfg, task_cfg.train_size, stream(seed, "train")),
        val=task.make(eval_cfg, eval_cfg.val_size, stream(seed, "val")),
        test=task.make(eval_cfg, eval_cfg.test_size, stream(seed, "test")),
    )


def sample_prompts(task_cfg, count: int, seed: int) -> list[tuple[list[int], list[int], list[int | None]]]:
    """`count` prompts of the task with their true answers (up to <EOS>, kept) and, per answer
    token, the token when it is given (mqar's query keys) or None, drawn from a stream of their
    own so that the training data are untouched."""
    data = task_of(task_cfg).make(task_cfg, count, stream(seed, "samples"))
    given = data.given.tolist() if data.given is not None else [[False] * data.tokens.shape[1]] * len(data)
    prompts = []
    for row, start, fed in zip(data.tokens.tolist(), data.answer_start.tolist(), given):
        end = row.index(EOS, start) + 1
        prompts.append(
            (row[:start], row[start:end], [t if g else None for t, g in zip(row[start:end], fed[start:end])])
        )
    return prompts
