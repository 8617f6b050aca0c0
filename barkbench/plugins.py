"""Everything a plugin author imports: barkbench's public face for a model family or a task of
one's own, installed as a package that names it by entry point (the README's "Add your own
model"; examples/barkbench-window is one). These names stay as they are while the modules
behind them move.

A model family:
    Family        what barkbench asks of a family: its config section, how to build its model,
                  the checks that relate its keys, its capacity keys
    ModelSection  the keys every model section has; a family's section subclasses it, with
                  `name: str = "<the entry point's name>"`
    Model         the protocol every model keeps: teacher_forcing, prefill, decode and
                  state_bytes it must give, and a `head`; the rest has defaults
    DecoderOnly   the base that gives a decoder-only model the defaults, and teacher_forcing,
                  prefill and decode from its forward(tokens, state) -> (logits, state)

A task:
    Task, TaskSection, Dataset, Buckets   what barkbench asks of a task, the keys every task
                  section has, the data a task makes, how its results are bucketed

Model and DecoderOnly import torch, and are imported from here only when asked for: the module
an entry point names should make the Family without them (its network in a module of its own,
imported by `build`), so that reading and validating a config never loads torch.
"""

from __future__ import annotations

import importlib

from barkbench.models.family import Family, ModelSection
from barkbench.tasks.common import Buckets, Dataset, Task, TaskSection

TORCH = {"Model": "barkbench.models.protocol", "DecoderOnly": "barkbench.models.parts"}  # name -> its module
__all__ = ["Family", "ModelSection", "Task", "TaskSection", "Dataset", "Buckets", *TORCH]


def __getattr__(name: str):
    if name not in TORCH:
        raise AttributeError(f"module 'barkbench.plugins' has no attribute {name!r}")
    return getattr(importlib.import_module(TORCH[name]), name)
