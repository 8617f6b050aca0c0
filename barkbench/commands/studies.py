"""Studies: train a grid of runs and report over them, or report again without training."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from barkbench import locate
from barkbench.commands.options import LOOK_IN, RUNS_DIR, check_directory, config_option, resume_option
from barkbench.display import err, out
from barkbench.errors import BarkError, Interrupted, RunFailed


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
    from barkbench.study.launch import launcher as launcher_named
    from barkbench.study.launch import run_study
    from barkbench.study.plan import start_study, study_file

    launch = launcher_named(launcher, jobs=jobs, address=address)
    if resume is not None:
        if config is not None or overrides:
            raise BarkError("--resume continues a study with its own study.yaml; drop --config and the overrides")
        directory = locate.directory(resume, "study", root=runs_dir)
        check_directory(directory, "study")
        study_file(directory)
    elif config is None:
        raise BarkError("give a config with --config FILE (for example --config smoke), or --resume STUDY")
    else:
        say = lambda line: err.print(line, highlight=False, soft_wrap=True)  # noqa: E731
        directory = start_study(locate.config_path(config), overrides or [], runs_dir, say)
    err.print(f"study directory: {directory}", highlight=False, soft_wrap=True)
    interrupted = run_study(directory, launch)
    again = f"barkbench compare --resume {directory}" + (f" --launcher {launcher}" if launcher != "local" else "")
    again += f" --address {address}" if address else ""
    rows = show_findings(directory)
    unfinished = [r for r in rows if r["status"] != "completed"]
    if interrupted:
        raise Interrupted(f"interrupted; resume with: {again}", interrupted)
    if unfinished:
        # a failed run's message, and a damaged one's, in report.md, say what to do; the others resume
        stopped = [r["name"] for r in unfinished if r["status"] in ("interrupted", "dead", "not started")]
        names = ", ".join(r["name"] for r in unfinished)
        raise RunFailed(
            f"{len(unfinished)} of {len(rows)} runs did not complete ({names}); report.md says why and what to do"
            + (f". Finish {', '.join(stopped)} with: {again}" if stopped else "")
        )


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
    directory = locate.directory(directory, "study", root=runs_dir)
    if not directory.is_dir():
        raise BarkError(f"study directory '{directory}' does not exist; give the path of one under runs/")
    show_findings(directory, force)


def show_findings(directory: Path, force: bool = False) -> list[dict]:
    """Write the study's report files, print its tables and sentences; return its rows."""
    from barkbench.display import grid_table
    from barkbench.errors import Damaged
    from barkbench.rundir import read_json
    from barkbench.study.outputs import write_outputs

    try:
        read_json(directory / "results.json")
    except Damaged as damage:  # gathered again below
        err.print(f"{damage.problem}; writing it again", highlight=False, soft_wrap=True)
    except BarkError:
        pass  # not written yet
    findings = write_outputs(directory, force)
    for title, headers, cells in findings["tables"]:
        out.print(grid_table(title, headers, cells))
    for line in findings["lines"]:
        out.print(f"- {escape(line['sentence'])}", highlight=False, soft_wrap=True)
    for said in (findings["findings"]["comparison"], findings["findings"].get("frontier_said")):
        if said:
            out.print(escape(said), highlight=False, soft_wrap=True)
    for row in findings["rows"]:
        if row["status"] == "damaged":  # what mends it, on stderr where errors go
            err.print(f"{row['run']} is damaged: {row['message']}", highlight=False, soft_wrap=True)
    pictures = ", ".join(p.name for p in sorted(directory.glob("*.png")))
    files = f"{directory / 'results.json'}, report.md, {pictures}"
    if findings["written"]:
        out.print(f"wrote {files}", highlight=False, soft_wrap=True)
    else:
        out.print(
            f"no run changed since {files} were written (--force writes them again)", highlight=False, soft_wrap=True
        )
    return findings["rows"]
