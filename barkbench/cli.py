"""The barkbench command line: train, generate, runs, validate, compare, report."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import List, Optional

import typer
import yaml
from rich.markup import escape

from barkbench.config import load_config, to_yaml
from barkbench.display import err, figures_table, grid_table, out, print_samples, runs_table, training_progress
from barkbench.errors import BarkError, Interrupted, RunFailed, exit_code
from barkbench.rundir import check_resumable, find_runs, load_run_config, read_json, read_jsonl, shown_status, start_run
from barkbench.study.findings import write_findings
from barkbench.study.plan import start_study

# torch (a second or more to import) and matplotlib are imported inside the commands that
# train, sample or draw, so that --help, runs, validate and the rest answer at once.

app = typer.Typer(
    help="Train tiny language models on the bark language and watch recurrence forget what attention remembers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

OVERRIDES = typer.Argument(
    None, help="Dotted KEY=VALUE overrides of the config, e.g. train.steps=100 model.layers=1.", show_default=False
)
RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="Where run directories are created.")


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


@app.command()
@friendly
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A training config (YAML).", show_default=False),
    overrides: Optional[List[str]] = OVERRIDES,
    runs_dir: Path = RUNS_DIR,
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue an interrupted run directory.", show_default=False
    ),
):
    """Train one model and write a run directory (config, metrics, samples, checkpoints).

    Examples:

        barkbench train --config configs/baby.yaml

        barkbench train --config configs/echo_gpt.yaml train.steps=500 model.layers=1

        barkbench train --resume runs/gpt-echo-20261122-101500-3f2a
    """
    from barkbench.train import train as train_run

    check_sources(config, overrides, resume, "run", "config.yaml", "configs/baby.yaml")
    if resume is not None:
        cfg = load_run_config(resume)
        check_resumable(resume)
        run = resume
    else:
        cfg = load_config(config, overrides or [])
        run = start_run(cfg, runs_dir)
    err.print(f"run directory: {run}", highlight=False, soft_wrap=True)
    start = read_json(run / "meta.json").get("step", 0)
    with training_progress(cfg.name, cfg.train.steps, start) as on_step:
        summary = train_run(run, cfg, resume=resume is not None, on_step=on_step)
    out.print(figures_table(summary))
    print_samples(read_jsonl(run / "samples.jsonl"))
    out.print(f"wrote {run}", highlight=False, soft_wrap=True)


@app.command()
@friendly
def generate(
    run: Path = typer.Argument(..., help="A completed run directory.", show_default=False),
    prompt: Optional[str] = typer.Option(
        None, help="Prompt text (default: the run's task prompt).", show_default=False
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
    seed: int = typer.Option(0, help="Random seed for sampling."),
):
    """Sample from a trained run, stopping each sample at <EOS>.

    Examples:

        barkbench generate runs/baby-20261122-101500-3f2a

        barkbench generate RUN --prompt "User: speak Assistant:" --temperature 0 -n 1

        barkbench generate RUN --top-k 2 --seed 7 --max-new-tokens 50
    """
    import torch

    from barkbench.checkpoints import load_trained
    from barkbench.sample import draw_samples
    from barkbench.tasks import sample_prompts

    check_prompt(prompt)
    cfg, model = load_trained(run)
    # one prompt for every sample: the one given, the config's, or one of the task's
    text = prompt or cfg.sample.prompt or " ".join(cfg.vocab[t] for t in sample_prompts(cfg.task, 1, seed)[0][0])
    settings = cfg.sample.model_copy(
        update={
            "prompt": text,
            "num_samples": num_samples,
            "max_new_tokens": max_new_tokens or cfg.sample.max_new_tokens,
            "temperature": cfg.sample.temperature if temperature is None else temperature,
            "top_k": top_k,
        }
    )
    rows, _ = draw_samples(model, cfg.task, settings, seed, torch.Generator().manual_seed(seed))
    print_samples(rows)


@app.command("runs")
@friendly
def list_runs(directory: Path = typer.Argument(Path("runs"), help="Where to look for run directories.")):
    """List the runs in a directory (and in the studies inside it): name, model, task, status, val accuracy, age.

    A run marked `running` whose process is gone shows as `dead`; resume it with `barkbench train --resume RUN`.

    Examples:

        barkbench runs

        barkbench runs runs/long-context-20261122-101500-3f2a
    """
    if not directory.is_dir():
        raise BarkError(f"'{directory}' is not a directory; give the folder that holds your runs (default: runs)")
    rows = []
    for run in find_runs(directory):
        meta = read_json(run / "meta.json")
        summary = read_json(run / "summary.json") if (run / "summary.json").exists() else {}
        metrics = read_jsonl(run / "metrics.jsonl")
        cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
        rows.append(
            {
                "name": str(run.relative_to(directory)),
                "model": cfg.get("model", {}).get("name", "?"),
                "task": cfg.get("task", {}).get("name", "?"),
                "status": shown_status(meta),
                "step": meta.get("step", 0),
                "steps": cfg.get("train", {}).get("steps", "?"),
                "val_accuracy": summary.get("val_accuracy", metrics[-1]["val_accuracy"] if metrics else None),
                "age_seconds": time.time() - (run / "meta.json").stat().st_mtime,
            }
        )
    if not rows:
        out.print(
            f"no runs in {directory}; start one with: barkbench train --config configs/baby.yaml", highlight=False
        )
        return
    out.print(runs_table(rows))


@app.command()
@friendly
def validate(
    config: Path = typer.Option(..., "--config", "-c", help="A training config (YAML).", show_default=False),
    overrides: Optional[List[str]] = OVERRIDES,
):
    """Check a config and print it resolved (defaults filled in, overrides applied), or every problem in it.

    Examples:

        barkbench validate --config configs/echo_gpt.yaml

        barkbench validate --config configs/echo_gpt.yaml model.heads=3
    """
    out.print(to_yaml(load_config(config, overrides or [])), end="", highlight=False, soft_wrap=True)


@app.command("compare")
@friendly
def compare_models(
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="A compare config (YAML), such as configs/compare/smoke.yaml.", show_default=False
    ),
    overrides: Optional[List[str]] = typer.Argument(
        None, help="Dotted KEY=VALUE overrides of the base training config, e.g. train.steps=50.", show_default=False
    ),
    runs_dir: Path = RUNS_DIR,
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1, help="Runs trained at once (default: one per CPU core).", show_default=False
    ),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Finish an interrupted study directory.", show_default=False
    ),
    launcher: str = typer.Option("local", "--launcher", help="How the runs are trained: local (this machine's cores)."),
    address: Optional[str] = typer.Option(
        None, "--address", help="The cluster a launcher joins (--launcher ray).", show_default=False
    ),
):
    """Train several models on the same data (every model x seed x sweep value), then report where each one forgets.

    Writes a study directory holding one run directory per combination, results.json,
    report.md and collapse.png, and prints the table. A failed run is recorded and the
    others go on; --resume keeps the completed runs and finishes the rest.

    Examples:

        barkbench compare --config configs/compare/smoke.yaml

        barkbench compare --config configs/compare/long_context.yaml --jobs 2 train.steps=500

        barkbench compare --resume runs/long-context-20261122-101500-3f2a
    """
    from barkbench.study.launch import launcher as launcher_named
    from barkbench.study.launch import run_study

    check_sources(config, overrides, resume, "study", "study.yaml", "configs/compare/smoke.yaml")
    launch = launcher_named(launcher, jobs=jobs, address=address)
    if resume is not None:
        directory = resume
    else:
        directory = start_study(config, overrides or [], runs_dir)
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
def report_study(directory: Path = typer.Argument(..., help="A study directory made by `barkbench compare`.")):
    """Re-render a study's results.json, report.md and collapse.png from its run directories, without training.

    Examples:

        barkbench report runs/long-context-20261122-101500-3f2a

        barkbench report runs/smoke-20261122-093000-1c2d
    """
    if not directory.is_dir():
        raise BarkError(f"study directory '{directory}' does not exist; give the path of one under runs/")
    show_findings(directory)


@app.command("inspect")
@friendly
def inspect_run(
    run: Path = typer.Argument(..., help="A completed run directory.", show_default=False),
    prompt: Optional[str] = typer.Option(
        None,
        help="Inspect this prompt and the model's own answer (default: a sequence of the run's task).",
        show_default=False,
    ),
    out_dir: Optional[Path] = typer.Option(
        None, "--out", help="Where the PNG files go (default: RUN/inspect).", show_default=False
    ),
):
    """Draw what a trained model attends to (attention-layer<N>.png, one panel per head) and how far back
    the answer's loss reaches (gradients.png: gradient norm at every earlier position, log scale).

    Examples:

        barkbench inspect runs/echo-gpt-20261122-101500-3f2a

        barkbench inspect runs/echo-rnn-20261122-101500-3f2a --out pictures/rnn

        barkbench inspect RUN --prompt "User: woof arf ruff grrr speak woof Assistant:"
    """
    import torch

    from barkbench.checkpoints import load_trained
    from barkbench.inspection import draw_pictures

    check_prompt(prompt)
    cfg, model = load_trained(run, torch.device("cpu"))  # pictures need no accelerator
    for path in draw_pictures(cfg, model, prompt, out_dir or run / "inspect"):
        out.print(f"wrote {path}", highlight=False, soft_wrap=True)


def check_sources(config, overrides, resume, what: str, own_file: str, example: str) -> None:
    """Either --resume DIR, or --config FILE with its overrides; never both, never neither."""
    if resume is not None:
        if config is not None or overrides:
            raise BarkError(f"--resume continues a {what} with its own {own_file}; drop --config and the overrides")
        if not resume.is_dir():
            raise BarkError(f"{what} directory '{resume}' does not exist; give the path of one under runs/")
    elif config is None:
        raise BarkError(f"give a config with --config FILE (for example {example}), or --resume {what.upper()}")


def check_prompt(prompt: str | None) -> None:
    if prompt is not None and not prompt.split():
        raise BarkError("--prompt is empty; give at least one word, such as --prompt 'User: speak Assistant:'")


def show_findings(directory: Path) -> list[dict]:
    """Write the study's report files, print its table and sentences; return its rows."""
    findings = write_findings(directory)
    for title, headers, cells in findings["tables"]:
        out.print(grid_table(title, headers, cells))
    for group in findings["lines"]:
        out.print(f"- {escape(group['sentence'])}", highlight=False, soft_wrap=True)
    pictures = ", ".join(p.name for p in sorted(directory.glob("*.png")))
    out.print(f"wrote {directory / 'results.json'}, report.md, {pictures}", highlight=False, soft_wrap=True)
    return findings["rows"]


def main():
    app()
