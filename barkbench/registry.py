"""The registries' one piece of machinery: a plain dict of barkbench's own entries that also holds
the plugins installed under its entry-point group (`barkbench.models`, `barkbench.tasks`).

The plugins are read the first time the registry is, not at import: in whichever process reads it
(the command, a local worker, a Ray worker: each finds what is installed where it runs), and only
by commands that need a registry, so `--help`, `runs` and `report` of an unchanged study still
work beside a broken plugin. Reading them imports each plugin's module, which imports
barkbench.plugins: at barkbench's import time that would be a cycle.
"""

from __future__ import annotations

import importlib
from collections import UserDict
from importlib import metadata

from barkbench.errors import BarkError


class Registry(UserDict):
    """Registry("model", Family, {"rnn": ..., ...}): the entries by name, barkbench's own first,
    then those of the plugins under the group barkbench.models, each checked to be a Family and
    given to `adopt`, which returns the entry as barkbench keeps it."""

    def __init__(self, section: str, kind: type, builtins: dict, adopt=lambda entry: entry):
        self.section, self.kind, self.builtins, self.adopt = section, kind, builtins, adopt
        self.group = f"barkbench.{section}s"
        self._entries = None

    @property
    def data(self) -> dict:  # what UserDict reads and writes
        if self._entries is None:
            self._entries = dict(self.builtins)  # what a plugin that reads the registry as it is imported sees
            try:
                self._entries.update(self.plugins())
            except BarkError:
                self._entries = None  # read again next time, and said again
                raise
        return self._entries

    @data.setter
    def data(self, entries: dict) -> None:
        self._entries = entries

    def plugins(self) -> dict:
        """The installed plugins' entries by name; a BarkError for a plugin that cannot be one."""
        found, package_of = {}, {}
        for point in metadata.entry_points(group=self.group):
            package = point.dist.name if point.dist else point.value.partition(":")[0]
            where = f"the plugin {package}'s entry point {point.name} = {point.value!r} (group {self.group})"
            if point.name in self.builtins:
                raise BarkError(
                    f"{where} registers {self.section}.name {point.name!r}, which barkbench's own {self.section} "
                    f"{point.name} already has; give the entry point another name in {package}'s pyproject.toml"
                )
            if point.name in package_of:
                raise BarkError(
                    f"the plugins {package_of[point.name]} and {package} both register {self.section}.name "
                    f"{point.name!r}; uninstall one of them, or rename its entry point"
                )
            found[point.name], package_of[point.name] = self.adopt(self.load(point, package, where)), package
        return found

    def load(self, point: metadata.EntryPoint, package: str, where: str):
        """The object an entry point names, checked to be of the registry's kind."""
        try:
            module = importlib.import_module(point.module)
        except ModuleNotFoundError as error:
            if error.name and (point.module == error.name or point.module.startswith(error.name + ".")):
                raise BarkError(
                    f"{where} names the module {point.module}, which is not installed; "
                    f"point the entry point at a module of {package}, or reinstall {package}"
                ) from None
            raise self.broken(package, where, error) from None
        except Exception as error:  # noqa: BLE001 - whatever the plugin raises, it is said in one sentence
            raise self.broken(package, where, error) from None
        entry = module
        for attribute in point.attr.split(".") if point.attr else ():
            if not hasattr(entry, attribute):
                raise BarkError(
                    f"{where} names {point.value}, but {point.module} has no {point.attr}; "
                    f"point the entry point at the {self.kind.__name__} it makes"
                )
            entry = getattr(entry, attribute)
        config = getattr(entry, "config", None)
        if not isinstance(entry, self.kind):
            got = f"the module {point.module}" if entry is module else f"an object of type {type(entry).__name__}"
            raise BarkError(
                f"{where} names {got}, not a barkbench.plugins.{self.kind.__name__}; "
                f"point it at the {self.kind.__name__} its module makes"
            )
        if "name" not in getattr(config, "model_fields", {}):
            raise BarkError(
                f"{where}: its {self.kind.__name__}'s config has no `name` key; give it one, "
                f"such as name: str = {point.name!r}"
            )
        return entry

    def broken(self, package: str, where: str, error: Exception) -> BarkError:
        return BarkError(
            f"{where} fails to import ({type(error).__name__}: {' '.join(str(error).split())}); "
            f"fix {package}, or uninstall it with pip uninstall {package}"
        )
