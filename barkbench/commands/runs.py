"""One run: train it (or go on training it), sample from it, draw what it looks at."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer

from barkbench import locate
from barkbench.commands.options import (
    LOOK_IN,
    OVERRIDES,
    RUN,
    RUNS_DIR,
    check_directory,
    check_prompt,
    config_option,
    resume_option,
)
from barkbench.display import err, out
from barkbench.errors import BarkError


def train(
    config: Optional[Path] = config_option("A training config: a YAML path or a shipped config's name."),
    overrides: Optional[List[str]] = OVERRIDES,
    runs_dir: Path = RUNS_DIR,
    resume: Optional[Path] = resume_option(
        "Continue an interrupted run; with train.steps=N, train a completed one on to N steps."
    ),
):
    """Train one model and write a run directory (config, metrics, samples, checkpoints, curves.png).

    Examples:

    \b
      barkbench train --config baby
      barkbench train --config configs/echo_gpt.yaml train.steps=500 model.layers=1
      barkbench train --resume latest
      barkbench train --resume runs/baby-20261122-101500-3f2a train.steps=600
    """
    from barkbench.config import load_config, notes
    from barkbench.display import figures_table, output_closed, print_samples, training_progress
    from barkbench.repair import mend
    from barkbench.rundir import read_jsonl, start_run
    from barkbench.study.job import slower
    from barkbench.tasks import task_of

    start = None  # the step it resumes from
    if resume is not None:
        if config is not None:
            raise BarkError("--resume continues a run with its own config.yaml; drop --config")
        run = locate.directory(resume, root=runs_dir)
        check_directory(run, "run")
        cfg = resumed_config(run, overrides or [])
        start, mended = mend(run, cfg)
    elif config is None:
        raise BarkError("give a config with --config FILE (for example --config baby), or --resume RUN")
    else:
        cfg = load_config(locate.config_path(config), overrides or [])
        mended = notes(cfg)
        run = start_run(cfg, runs_dir)
    from barkbench.train import train as train_run  # torch: only once the config is known to be good

    for line in [*mended, slower(cfg.threads)]:
        if line:
            err.print(line, highlight=False, soft_wrap=True)
    err.print(f"run directory: {run}", highlight=False, soft_wrap=True)
    if start:
        err.print(f"resuming from step {start} of {cfg.train.steps}", highlight=False)
    content = task_of(cfg.task).content
    with training_progress(cfg.name, cfg.train.steps, start or 0, content) as on_step:
        # a reader that goes away (`| head`) stops the run at a checkpoint, as Ctrl-C does
        summary = train_run(run, cfg, resume=start is not None, on_step=on_step, stop_requested=output_closed)
    if summary["stopped_early"]:
        err.print(
            f"stopped early at step {summary['steps']} of {cfg.train.steps}: validation accuracy of the answer's "
            f"{content} {summary['bark_accuracy']:.3f} reached train.stop_at {cfg.train.stop_at}",
            highlight=False,
        )
    out.print(figures_table(summary, content))
    print_samples(read_jsonl(run / "samples.jsonl"))
    out.print(f"wrote {run}", highlight=False, soft_wrap=True)


def resumed_config(run: Path, overrides: list[str]):
    """The config a resumed run goes on with: its own; with train.steps=N, the only override a
    resume takes, its own trained on to N steps (the cosine schedule stretched to the new end)."""
    from barkbench.config import apply_overrides, to_yaml, validate
    from barkbench.rundir import check_resumable, load_run_config, read_json, shown_status, update_meta, write_atomic
    from barkbench.yamlfile import read_yaml

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
    cfg = validate(data, str(run / "config.yaml"), apply_overrides(data, overrides), overrides)
    meta = read_json(run / "meta.json")
    if shown_status(meta) == "running":
        check_resumable(run)  # says it is still running
    if cfg.train.steps <= meta.get("step", 0):
        raise BarkError(
            f"run {run} has trained {meta.get('step', 0)} steps already; give train.steps above that to train it on"
        )
    write_atomic(run / "config.yaml", to_yaml(cfg))
    update_meta(run, steps=cfg.train.steps)
    return cfg


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
    runs_dir: Path = LOOK_IN,
):
    """Sample from a trained run; where the task has a right answer, show it and ✓ or ✗.

    Each sample stops at <EOS>. Without --prompt each sample gets a prompt of the run's task.

    Examples:

    \b
      barkbench generate latest
      barkbench generate runs/echo-gpt-20261122-101500-3f2a --temperature 0 -n 8
      barkbench generate RUN --prompt "User: woof arf speak Assistant:" --top-k 2 --seed 7
    """
    import torch

    from barkbench.checkpoints import load_trained
    from barkbench.display import print_samples
    from barkbench.sample import draw_samples

    check_prompt(prompt)
    if temperature is not None and not math.isfinite(temperature):
        raise BarkError(f"--temperature must be a finite number (0 is greedy, 1 samples as trained), not {temperature}")
    cfg, model = load_trained(locate.directory(run, root=runs_dir))
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
    runs_dir: Path = LOOK_IN,
):
    """Draw what a trained model attends to and how far back the answer's loss reaches.

    attention-layer<N>.png: one panel per head; alignment-layer<N>.png (encoder-decoders): where
    the decoder looks in the source; gradients.png: the gradient norm of the answer's loss at the
    model's state at every earlier position, log scale.

    Examples:

    \b
      barkbench inspect latest
      barkbench inspect runs/echo-rnn-20261122-101500-3f2a --out pictures/rnn
      barkbench inspect RUN --prompt "User: woof arf ruff grrr speak woof Assistant:"
    """
    import torch

    from barkbench.checkpoints import load_trained
    from barkbench.inspection import draw_pictures
    from barkbench.rundir import writable

    check_prompt(prompt)
    run = locate.directory(run, root=runs_dir)
    cfg, model = load_trained(run, torch.device("cpu"))  # pictures need no accelerator
    writable(out_dir or run / "inspect", "--out")
    for path in draw_pictures(cfg, model, prompt, out_dir or run / "inspect", run.name):
        out.print(f"wrote {path}", highlight=False, soft_wrap=True)
