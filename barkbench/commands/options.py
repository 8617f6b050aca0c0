"""What the commands share: their common options and arguments, and the checks of what they name."""

from __future__ import annotations

from pathlib import Path

import typer

from barkbench import locate
from barkbench.errors import BarkError

OVERRIDES = typer.Argument(
    None, help="Dotted KEY=VALUE overrides of the config, e.g. train.steps=100 model.layers=1.", show_default=False
)
RUNS_DIR = typer.Option(
    Path("runs"),
    "--runs-dir",
    envvar="BARKBENCH_RUNS_DIR",
    help="Where run directories are created, and `latest` and names are looked for.",
)
LOOK_IN = typer.Option(
    Path("runs"), "--runs-dir", envvar="BARKBENCH_RUNS_DIR", help="Where `latest` and names are looked for."
)
RUN = typer.Argument(
    ...,
    help="A run directory: its path, `latest`, or the start of its name under --runs-dir.",
    show_default=False,
    autocompletion=locate.complete_runs,
)


def resume_option(help: str):
    return typer.Option(None, "--resume", help=help, show_default=False, autocompletion=locate.complete_runs)


def config_option(help: str):
    return typer.Option(None, "--config", "-c", help=help, show_default=False, autocompletion=locate.complete_configs)


def check_prompt(prompt: str | None) -> None:
    if prompt is not None and not prompt.split():
        raise BarkError("--prompt is empty; give at least one word, such as --prompt 'User: speak Assistant:'")
