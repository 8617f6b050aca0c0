"""The barkbench command line: train, generate, inspect, runs, validate, configs, compare, report.

torch (a second or more to import) and matplotlib are imported inside the commands that train,
sample or draw, and pydantic inside those that read configs, so that --help and `runs` answer
at once.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from barkbench import __version__, locate
from barkbench.display import err, out
from barkbench.errors import BarkError, Interrupted, RunFailed, exit_code

app = typer.Typer(
    help="Train tiny language models on the bark language and watch recurrence forget what attention remembers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

OVERRIDES = typer.Argument(
    None, help="Dotted KEY=VALUE overrides of the config, e.g. train.steps=100 model.layers=1.", show_default=False
)
RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="Where run directories are created.")
RUN = typer.Argument(
    ...,
    help="A run directory: its path, `latest`, or the start of its name under runs/.",
    show_default=False,
    autocompletion=locate.complete_runs,
)


def config_option(help: str):
    return typer.Option(None, "--config", "-c", help=help, show_default=False, autocompletion=locate.complete_configs)


def show_version(value: bool):
    if value:
        out.print(f"barkbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def options(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=show_version, is_eager=True, help="Print barkbench's version and exit."
    ),
):
    """Train tiny language models on the bark language and watch recurrence forget what attention remembers.

    Start with: barkbench configs (the shipped configs), then barkbench train --config baby.
    """


def friendly(command):
    """Turn a BarkError into its message on stderr and its exit status, with no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BarkError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code(e)) from None
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


# ---- one run ------------------------------------------------------------------------------------


@app.command()
@friendly
def train(
    config: Optional[Path] = config_option("A training config: a YAML path or a shipped config's name."),
    overrides: Optional[List[str]] = OVERRIDES,
    runs_dir: Path = RUNS_DIR,
    resume: Optional[Path] = typer.Option(
        None,
        "--resume",
        help="Continue an interrupted run; with train.steps=N, train a completed one on to N steps.",
        show_default=False,
        autocompletion=locate.complete_runs,
    ),
):
    """Train one model and write a run directory (config, metrics, samples, checkpoints, curves.png).

    Examples:

        barkbench train --config baby

        barkbench train --config configs/echo_gpt.yaml train.steps=500 model.layers=1

        barkbench train --resume latest

        barkbench train --resume runs/baby-20261122-101500-3f2a train.steps=600
    """
    from barkbench.config import load_config
    from barkbench.display import figures_table, print_samples, training_progress
    from barkbench.rundir import read_json, read_jsonl, start_run
    from barkbench.train import train as train_run

    if resume is not None:
        if config is not None:
            raise BarkError("--resume continues a run with its own config.yaml; drop --config")
        run = locate.directory(resume)
        check_directory(run, "run")
        cfg = resumed_config(run, overrides or [])
    elif config is None:
        raise BarkError("give a config with --config FILE (for example --config baby), or --resume RUN")
    else:
        cfg = load_config(locate.config_path(config), overrides or [])
        run = start_run(cfg, runs_dir)
    err.print(f"run directory: {run}", highlight=False, soft_wrap=True)
    start = read_json(run / "meta.json").get("step", 0) if resume else 0
    if start:
        err.print(f"resuming from step {start} of {cfg.train.steps}", highlight=False)
    with training_progress(cfg.name, cfg.train.steps, start) as on_step:
        summary = train_run(run, cfg, resume=resume is not None, on_step=on_step)
    out.print(figures_table(summary))
    print_samples(read_jsonl(run / "samples.jsonl"))
    out.print(f"wrote {run}", highlight=False, soft_wrap=True)


def resumed_config(run: Path, overrides: list[str]):
    """The config a resumed run goes on with: its own; with train.steps=N, the only override a
    resume takes, its own trained on to N steps (the cosine schedule stretched to the new end)."""
    from barkbench.config import apply_overrides, read_yaml, to_yaml, validate
    from barkbench.rundir import check_resumable, load_run_config, read_json, shown_status, write_atomic

    cfg = load_run_config(run)
    if not overrides:
        check_resumable(run)
        return cfg
    if len(overrides) > 1 or not overrides[0].startswith("train.steps="):
        raise BarkError(
            "--resume continues a run with its own config.yaml; the only override it takes is train.steps=N, "
            "to train a run on to N steps (drop --config and the other overrides)"
        )
    data = read_yaml(run / "config.yaml")
    cfg = validate(data, str(run / "config.yaml"), apply_overrides(data, overrides))
    meta = read_json(run / "meta.json")
    if shown_status(meta) == "running":
        check_resumable(run)  # says it is still running
    if cfg.train.steps <= meta.get("step", 0):
        raise BarkError(
            f"run {run} has trained {meta.get('step', 0)} steps already; give train.steps above that to train it on"
        )
    write_atomic(run / "config.yaml", to_yaml(cfg))
    return cfg


@app.command()
@friendly
def generate(
    run: Path = RUN,
    prompt: Optional[str] = typer.Option(
        None, help="Continue this prompt (default: a prompt of the run's task for each sample).", show_default=False
    ),
    num_samples: int = typer.Option(4, "--num-samples", "-n", min=1, help="How many samples."),
    max_new_tokens: Optional[int] = typer.Option(
        None,
        "--max-new-tokens",
        min=1,
        help="Longest answer (default: the run's sample.max_new_tokens).",
        show_default=False,
    ),
    temperature: Optional[float] = typer.Option(
        None, min=0.0, help="0 is greedy (default: the run's sample.temperature).", show_default=False
    ),
    top_k: Optional[int] = typer.Option(
        None, "--top-k", min=1, help="Sample only from the k likeliest tokens.", show_default=False
    ),
    seed: int = typer.Option(0, help="Random seed: for the task's prompts and for sampling."),
):
    """Sample from a trained run, stopping each sample at <EOS>; where the task has a right answer,
    show it and whether the sample got it (✓ / ✗).

    Examples:

        barkbench generate latest

        barkbench generate runs/echo-gpt-20261122-101500-3f2a --temperature 0 -n 8

        barkbench generate RUN --prompt "User: woof arf speak Assistant:" --top-k 2 --seed 7
    """
    import torch

    from barkbench.checkpoints import load_trained
    from barkbench.display import print_samples
    from barkbench.sample import draw_samples

    check_prompt(prompt)
    cfg, model = load_trained(locate.directory(run))
    settings = cfg.sample.model_copy(
        update={
            "prompt": prompt or cfg.sample.prompt,  # none: each sample gets a prompt of the task
            "num_samples": num_samples,
            "max_new_tokens": max_new_tokens or cfg.sample.max_new_tokens,
            "temperature": cfg.sample.temperature if temperature is None else temperature,
            "top_k": top_k,
        }
    )
    rows, _ = draw_samples(model, cfg.val_task, settings, seed, torch.Generator().manual_seed(seed))
    print_samples(rows)


@app.command("inspect")
@friendly
def inspect_run(
    run: Path = RUN,
    prompt: Optional[str] = typer.Option(
        None,
        help="Inspect this prompt and the model's own answer (default: a sequence of the run's task).",
        show_default=False,
    ),
    out_dir: Optional[Path] = typer.Option(
        None, "--out", help="Where the PNG files go (default: RUN/inspect).", show_default=False
    ),
):
    """Draw what a trained model attends to (attention-layer<N>.png, one panel per head; for an
    encoder-decoder, alignment-layer<N>.png) and how far back the answer's loss reaches
    (gradients.png: gradient norm at every earlier position, log scale).

    Examples:

        barkbench inspect latest

        barkbench inspect runs/echo-rnn-20261122-101500-3f2a --out pictures/rnn

        barkbench inspect RUN --prompt "User: woof arf ruff grrr speak woof Assistant:"
    """
    import torch

    from barkbench.checkpoints import load_trained
    from barkbench.inspection import draw_pictures

    check_prompt(prompt)
    run = locate.directory(run)
    cfg, model = load_trained(run, torch.device("cpu"))  # pictures need no accelerator
    for path in draw_pictures(cfg, model, prompt, out_dir or run / "inspect", run.name):
        out.print(f"wrote {path}", highlight=False, soft_wrap=True)


# ---- finding one's way ---------------------------------------------------------------------


@app.command("runs")
@friendly
def list_runs(directory: Path = typer.Argument(Path("runs"), help="Where to look for run directories.")):
    """List the runs in a directory (and in the studies inside it): name, model, task, status, accuracy, age.

    A run marked `running` whose process is gone shows as `dead`; resume it with `barkbench train --resume RUN`.

    Examples:

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


@app.command()
@friendly
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

        barkbench validate --config echo_gpt

        barkbench validate --config configs/echo_gpt.yaml model.heads=3
    """
    from barkbench.config import load_config, to_yaml

    out.print(
        to_yaml(load_config(locate.config_path(config), overrides or [])), end="", highlight=False, soft_wrap=True
    )


@app.command("configs")
@friendly
def list_configs():
    """List the shipped configs with what each one shows; give a name to --config.

    Examples:

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


# ---- studies ------------------------------------------------------------------------------


@app.command("compare")
@friendly
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
    resume: Optional[Path] = typer.Option(
        None,
        "--resume",
        help="Finish an interrupted study: its path, `latest`, or the start of its name.",
        show_default=False,
        autocompletion=locate.complete_runs,
    ),
    launcher: str = typer.Option("local", "--launcher", help="How the runs are trained: local (this machine's cores)."),
    address: Optional[str] = typer.Option(
        None, "--address", help="The cluster a launcher joins (--launcher ray).", show_default=False
    ),
):
    """Train several models on the same data (every model x seed x sweep value x tune value), then
    report, on the test split, where each one forgets.

    Writes a study directory holding one run directory per combination, results.json,
    report.md, collapse.png and curves.png, and prints the table. A failed run is recorded and
    the others go on; --resume keeps the completed runs and finishes the rest.

    Examples:

        barkbench compare --config smoke

        barkbench compare --config configs/compare/long_context.yaml --jobs 2 train.steps=500

        barkbench compare --resume latest
    """
    from barkbench.study.launch import launcher as launcher_named
    from barkbench.study.launch import run_study
    from barkbench.study.plan import start_study

    launch = launcher_named(launcher, jobs=jobs, address=address)
    if resume is not None:
        if config is not None or overrides:
            raise BarkError("--resume continues a study with its own study.yaml; drop --config and the overrides")
        directory = locate.directory(resume, "study")
        check_directory(directory, "study")
    elif config is None:
        raise BarkError("give a config with --config FILE (for example --config smoke), or --resume STUDY")
    else:
        directory = start_study(locate.config_path(config), overrides or [], runs_dir)
    err.print(f"study directory: {directory}", highlight=False, soft_wrap=True)
    interrupted = run_study(directory, launch)
    rows = show_findings(directory)
    unfinished = [r["name"] for r in rows if r["status"] != "completed"]
    if interrupted:
        raise Interrupted(f"interrupted; resume with: barkbench compare --resume {directory}", interrupted)
    if unfinished:
        raise RunFailed(
            f"{len(unfinished)} of {len(rows)} runs did not complete ({', '.join(unfinished)}); report.md says why. "
            f"Try them again with: barkbench compare --resume {directory}"
        )


@app.command("report")
@friendly
def report_study(
    directory: Path = typer.Argument(
        ...,
        help="A study directory: its path, `latest`, or the start of its name under runs/.",
        autocompletion=locate.complete_runs,
    ),
):
    """Re-render a study's results.json, report.md and pictures from its run directories, without training.

    Examples:

        barkbench report latest

        barkbench report runs/long-context-20261122-101500-3f2a
    """
    directory = locate.directory(directory, "study")
    if not directory.is_dir():
        raise BarkError(f"study directory '{directory}' does not exist; give the path of one under runs/")
    show_findings(directory)


def check_directory(path: Path, what: str) -> None:
    if not path.is_dir():
        raise BarkError(f"{what} directory '{path}' does not exist; give the path of one under runs/")


def check_prompt(prompt: str | None) -> None:
    if prompt is not None and not prompt.split():
        raise BarkError("--prompt is empty; give at least one word, such as --prompt 'User: speak Assistant:'")


def show_findings(directory: Path) -> list[dict]:
    """Write the study's report files, print its tables and sentences; return its rows."""
    from barkbench.display import grid_table
    from barkbench.study.findings import write_findings

    findings = write_findings(directory)
    for title, headers, cells in findings["tables"]:
        out.print(grid_table(title, headers, cells))
    for line in findings["lines"]:
        out.print(f"- {escape(line['sentence'])}", highlight=False, soft_wrap=True)
    if findings["findings"]["comparison"]:
        out.print(escape(findings["findings"]["comparison"]), highlight=False, soft_wrap=True)
    pictures = ", ".join(p.name for p in sorted(directory.glob("*.png")))
    out.print(f"wrote {directory / 'results.json'}, report.md, {pictures}", highlight=False, soft_wrap=True)
    return findings["rows"]


def main():
    app()
