"""barkbench: see, measured, why attention beats recurrence on long context.

From Python: barkbench.load_run, load_study, train and compare (barkbench/api.py), which raise
barkbench.BarkError and its kinds. They are imported when first asked for (PEP 562), so that
the command line, which imports this package, starts without pydantic or torch.
"""

import importlib
import sys
import types

__version__ = "0.2.0"

# name -> the module that holds it
PUBLIC = {
    "load_run": "barkbench.api",
    "load_study": "barkbench.api",
    "train": "barkbench.api",
    "compare": "barkbench.api",
    "Run": "barkbench.api",
    "Study": "barkbench.api",
    "BarkError": "barkbench.errors",
    "RunFailed": "barkbench.errors",
    "Interrupted": "barkbench.errors",
    "Damaged": "barkbench.errors",
}
__all__ = list(PUBLIC)


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module 'barkbench' has no attribute {name!r}")
    return getattr(importlib.import_module(PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *PUBLIC])


class Package(types.ModuleType):
    """This package, where `barkbench.train` is the function, though barkbench/train.py (the
    training loop) is a module of it too: importing a submodule sets the package's attribute of
    its name, which would hide the function once a run had trained. The module stays in
    sys.modules, where `from barkbench.train import train` and importlib find it."""

    @property
    def train(self):
        return __getattr__("train")

    @train.setter
    def train(self, module):
        pass


sys.modules[__name__].__class__ = Package
