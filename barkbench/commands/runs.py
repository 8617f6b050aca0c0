"""One run: train it (or go on training it), sample from it, draw what it looks at."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer

from barkbench import locate
from barkbench.commands.options import LOOK_IN, OVERRIDES, RUN, RUNS_DIR, check_prompt, config_option, resume_option
from barkbench.display import out
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
    from barkbench import api
    from barkbench.display import figures_table, print_samples
    from barkbench.tasks import TASKS

    run = api.train(config, overrides or [], runs_dir, resume)
    out.print(figures_table(run.summary, TASKS[run.config["task"]["name"]].content))
    print_samples(run.samples)
    out.print(f"wrote {run.path}", highlight=False, soft_wrap=True)


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
