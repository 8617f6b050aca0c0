"""The barkbench command line: train, generate, validate."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import List, Optional

import torch
import typer
import yaml
from rich.markup import escape

from barkbench.config import load_config, pick_device, to_yaml
from barkbench.errors import BarkError
from barkbench.models import build_model
from barkbench.report import err, out, print_samples, runs_table, summary_table, training_progress
from barkbench.rundir import find_runs, latest_checkpoint, load_weights, read_json, read_jsonl, shown_status
from barkbench.sample import generate as sample
from barkbench.tasks import EOS, decode, encode, sample_prompts
from barkbench.train import check_resumable, load_run_config, start_run
from barkbench.train import train as run_training

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
            raise typer.Exit(e.code) from None
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
    if resume is not None:
        if config is not None or overrides:
            raise BarkError("--resume continues a run with its own config.yaml; drop --config and the overrides")
        if not resume.is_dir():
            raise BarkError(f"run directory '{resume}' does not exist; give the path of a run under runs/")
        cfg = load_run_config(resume)
        check_resumable(resume)
        run = resume
    elif config is None:
        raise BarkError("give a config with --config FILE (for example configs/baby.yaml), or --resume RUN")
    else:
        cfg = load_config(config, overrides or [])
        run = start_run(cfg, runs_dir)
    err.print(f"run directory: {run}", highlight=False, soft_wrap=True)
    start = read_json(run / "meta.json").get("step", 0)
    with training_progress(cfg.name, cfg.train.steps, start) as report:
        summary = run_training(run, cfg, resume=resume is not None, report=report)
    out.print(summary_table(summary))
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
    if not run.is_dir():
        raise BarkError(f"run directory '{run}' does not exist; give the path of a run under runs/")
    cfg = load_run_config(run)
    status = shown_status(read_json(run / "meta.json"))
    if status != "completed":
        raise BarkError(f"run {run} is {status}, not completed; finish it with `barkbench train --resume {run}` first")
    model = build_model(cfg.model).to(pick_device(cfg.device))
    load_weights(model, latest_checkpoint(run))
    if prompt is not None and not prompt.split():
        raise BarkError("--prompt is empty; give at least one word, such as --prompt 'User: speak Assistant:'")
    text = prompt or cfg.sample.prompt or sample_prompts(cfg.task, 1, seed)[0]
    ids = encode(text)
    generator = torch.Generator().manual_seed(seed)
    temperature = cfg.sample.temperature if temperature is None else temperature
    answers = sample(
        model, ids, num_samples, max_new_tokens or cfg.sample.max_new_tokens, temperature, top_k, generator
    )
    print_samples(
        [
            {"prompt": text, "text": decode(a[:-1] if a[-1:] == [EOS] else a), "stopped": a[-1:] == [EOS]}
            for a in answers
        ]
    )


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


def main():
    app()
