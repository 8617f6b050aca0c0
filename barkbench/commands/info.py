"""Finding one's way: the runs there are, a config checked and resolved, the shipped configs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from barkbench import locate
from barkbench.commands.options import OVERRIDES
from barkbench.display import err, out
from barkbench.errors import BarkError


def list_runs(
    directory: Path = typer.Argument(
        Path("runs"), envvar="BARKBENCH_RUNS_DIR", help="Where to look for run directories."
    ),
):
    """List the runs in a directory (and in the studies inside it): name, model, task, status, accuracy, age.

    A run marked `running` whose process is gone shows as `dead`; resume it with `barkbench train --resume RUN`.
    A run with a damaged file shows as `damaged`, and a line below the table says what mends it.

    Examples:

    \b
      barkbench runs
      barkbench runs runs/long-context-20261122-101500-3f2a
    """
    from barkbench.display import runs_table
    from barkbench.rundir import find_runs, remedy, run_row, runs_dir_option

    if not directory.is_dir():
        raise BarkError(f"'{directory}' is not a directory; give the folder that holds your runs (default: runs)")
    runs = find_runs(directory)
    rows = [run_row(run, directory) for run in runs]
    if not rows:
        start = f"barkbench train --config baby{runs_dir_option(directory)}"  # a run this directory lists
        out.print(f"no runs in {directory}; start one with: {start}", highlight=False, soft_wrap=True)
        return
    out.print(runs_table(rows))
    for run, row in zip(runs, rows):
        if row["problems"]:
            err.print(f"{run} is damaged: {'; '.join(row['problems'])}; {remedy(run)}", highlight=False, soft_wrap=True)


def validate(
    config: Path = typer.Option(
        ...,
        "--config",
        "-c",
        help="A training or compare config: a YAML path or a shipped config's name.",
        show_default=False,
        autocompletion=locate.complete_configs,
    ),
    overrides: Optional[List[str]] = OVERRIDES,
):
    """Check a config and print it resolved (defaults filled in, overrides applied), or every problem in it.

    A compare config is checked with every run's config, and the runs it would train are listed; nothing is trained.

    Examples:

    \b
      barkbench validate --config echo_gpt
      barkbench validate --config configs/echo_gpt.yaml model.heads=3
      barkbench validate --config long_context train.steps=500
    """
    from barkbench.config import load_config, notes, to_yaml
    from barkbench.yamlfile import read_yaml

    path = locate.config_path(config)
    if "models" in (data := read_yaml(path)) and "model" not in data:
        return validate_study(path, data, overrides or [])
    cfg = load_config(path, overrides or [])
    for line in notes(cfg):
        err.print(line, highlight=False, soft_wrap=True)
    out.print(to_yaml(cfg), end="", highlight=False, soft_wrap=True)


def validate_study(path: Path, data: dict, overrides: list[str]) -> None:
    """A compare config checked, with its runs listed: name, model, seed, swept and tuned values."""
    from barkbench.display import grid_table
    from barkbench.study.plan import combination_notes, plan, short_names

    spec, combos = plan(data, str(path), path.parent, overrides)
    for line in combination_notes(combos):
        err.print(line, highlight=False, soft_wrap=True)
    grid = {**spec["sweep"], **spec["tune"]}
    short = short_names(list(grid))
    counts = [f"{len(spec['models'])} model entries", f"{len(spec['seeds'])} seeds"]
    counts += [
        f"{len(values)} {short[key]} values ({'tuned' if key in spec['tune'] else 'swept'})"
        for key, values in grid.items()
    ]
    cells = [
        [
            c["name"],
            c["config"].model.name,
            str(c["seed"]),
            " ".join(f"{short[k]}={v}" for k, v in {**c["sweep"], **c["tune"]}.items()),
        ]
        for c in combos
    ]
    title = f"{spec['name']}: {len(combos)} runs ({' x '.join(counts)}); validate trains none of them"
    out.print(grid_table(title, ["run", "model", "seed", "settings"], cells, left=4))


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
