"""Finding one's way: the runs there are, a config checked and resolved, the shipped configs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from barkbench import locate
from barkbench.commands.options import OVERRIDES
from barkbench.display import out
from barkbench.errors import BarkError


def list_runs(directory: Path = typer.Argument(Path("runs"), help="Where to look for run directories.")):
    """List the runs in a directory (and in the studies inside it): name, model, task, status, accuracy, age.

    A run marked `running` whose process is gone shows as `dead`; resume it with `barkbench train --resume RUN`.

    Examples:

    \b
      barkbench runs
      barkbench runs runs/long-context-20261122-101500-3f2a
    """
    from barkbench.display import runs_table
    from barkbench.rundir import find_runs, run_row

    if not directory.is_dir():
        raise BarkError(f"'{directory}' is not a directory; give the folder that holds your runs (default: runs)")
    rows = [run_row(run, directory) for run in find_runs(directory)]
    if not rows:
        out.print(f"no runs in {directory}; start one with: barkbench train --config baby", highlight=False)
        return
    out.print(runs_table(rows))


def validate(
    config: Path = typer.Option(
        ...,
        "--config",
        "-c",
        help="A training config: a YAML path or a shipped config's name.",
        show_default=False,
        autocompletion=locate.complete_configs,
    ),
    overrides: Optional[List[str]] = OVERRIDES,
):
    """Check a config and print it resolved (defaults filled in, overrides applied), or every problem in it.

    Examples:

    \b
      barkbench validate --config echo_gpt
      barkbench validate --config configs/echo_gpt.yaml model.heads=3
    """
    from barkbench.config import load_config, to_yaml

    out.print(
        to_yaml(load_config(locate.config_path(config), overrides or [])), end="", highlight=False, soft_wrap=True
    )


def list_configs():
    """List the shipped configs with what each one shows; give a name to --config.

    Examples:

    \b
      barkbench configs
      barkbench configs && barkbench train --config echo_rnn
    """
    from barkbench.display import grid_table

    shipped = locate.shipped_configs()
    cells = [
        [name, "compare" if path.parent.name == "compare" else "train", locate.purpose(path)]
        for name, path in shipped.items()
    ]
    out.print(grid_table(f"shipped configs ({locate.SHIPPED})", ["name", "command", "what it shows"], cells, left=3))
