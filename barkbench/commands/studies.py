"""Studies: train a grid of runs and report over them, or report again without training."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from barkbench import locate
from barkbench.commands.options import LOOK_IN, RUNS_DIR, config_option, resume_option
from barkbench.display import err, out
from barkbench.errors import Interrupted, RunFailed


def compare_models(
    config: Optional[Path] = config_option("A compare config: a YAML path or a shipped one's name, such as smoke."),
    overrides: Optional[List[str]] = typer.Argument(
        None, help="Dotted KEY=VALUE overrides of the base training config, e.g. train.steps=50.", show_default=False
    ),
    runs_dir: Path = RUNS_DIR,
    jobs: Optional[int] = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="Runs trained at once (--launcher local; default: as many as the cores hold).",
        show_default=False,
    ),
    resume: Optional[Path] = resume_option(
        "Finish an interrupted study: its path, `latest`, or the start of its name."
    ),
    launcher: str = typer.Option(
        "local",
        "--launcher",
        help="How the runs are trained: local (this machine's cores) or ray (Ray tasks; a cluster with --address).",
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="The cluster a launcher joins (--launcher ray).", show_default=False
    ),
):
    """Train several models on the same data, then report, on the test split, where each one forgets.

    Every model x seed x sweep value x tune value is one run. Writes a study directory holding one run directory per combination, results.json,
    report.md, collapse.png and curves.png, and prints the table. A failed run is recorded and
    the others go on; --resume keeps the completed runs and finishes the rest.

    Examples:

    \b
      barkbench compare --config smoke
      barkbench compare --config configs/compare/long_context.yaml --jobs 2 train.steps=500
      barkbench compare --resume latest
    """
    from barkbench import api

    try:
        study = api.compare(config, overrides or [], runs_dir, jobs, launcher, address, resume)
    except (RunFailed, Interrupted) as error:
        if error.study is not None:  # its outputs are written: shown, then the error
            show_findings(error.study)
        raise
    show_findings(study)


def report_study(
    directory: Path = typer.Argument(
        ...,
        help="A study directory: its path, `latest`, or the start of its name under runs/.",
        autocompletion=locate.complete_runs,
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Gather the figures and draw the pictures again even if no run changed since the last report.",
    ),
    runs_dir: Path = LOOK_IN,
):
    """Re-render a study's results.json, report.md and pictures from its run directories, without training.

    When no run changed since they were written, the report is shown from results.json and nothing is redrawn.

    Examples:

    \b
      barkbench report latest
      barkbench report runs/long-context-20261122-101500-3f2a
      barkbench report latest --force
    """
    from barkbench import api

    show_findings(api.load_study(directory, runs_dir, force))


def show_findings(study) -> None:
    """Print a study's tables and sentences (an api.Study), and what was written."""
    from barkbench.display import grid_table
    from barkbench.study.report_file import terminal_tables

    findings = study.results
    for title, headers, cells in terminal_tables(findings):
        out.print(grid_table(title, headers, cells))
    for line in study.lines:
        out.print(f"- {escape(line['sentence'])}", highlight=False, soft_wrap=True)
    for said in (findings["comparison"], findings.get("frontier_said")):
        if said:
            out.print(escape(said), highlight=False, soft_wrap=True)
    for row in study.runs:
        if row["status"] == "damaged":  # what mends it, on stderr where errors go
            err.print(f"{row['run']} is damaged: {row['message']}", highlight=False, soft_wrap=True)
    pictures = ", ".join(p.name for p in sorted(study.path.glob("*.png")))
    files = f"{study.path / 'results.json'}, report.md, {pictures}"
    if study.written:
        out.print(f"wrote {files}", highlight=False, soft_wrap=True)
    else:
        out.print(
            f"no run changed since {files} were written (--force writes them again)", highlight=False, soft_wrap=True
        )
