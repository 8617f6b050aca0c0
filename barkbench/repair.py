"""Mending a damaged run directory, which is what resuming does first (`barkbench train --resume`,
and each run of `barkbench compare --resume`). What is damaged is found by rundir.problems; here
it is made fit to go on:

- meta.json unreadable or missing: rebuilt from config.yaml (the run's status, step and times
  come back as it trains);
- metrics.jsonl lines that do not parse (a last line torn by a crash, or worse): dropped;
- checkpoints that are not intact, newest first: set aside as checkpoints/damaged-step-N, so that
  the run resumes from the newest intact one before them, and trains the same steps again
  (training is deterministic, so it ends with the weights it would have had);
- summary.json unreadable or missing: nothing here; the resumed run measures its final
  checkpoint again and writes it, as it does for a run killed while it sampled.

A run whose every checkpoint is damaged is not mended: there is nothing to resume from, and its
files stay as they are for whoever looks at them.
"""

from __future__ import annotations

import os
from pathlib import Path

from barkbench.errors import BarkError, Damaged, RunFailed
from barkbench.rundir import (
    afresh_command,
    bad_lines,
    checkpoint_problem,
    checkpoint_step,
    first_meta,
    lines_are,
    list_checkpoints,
    read_json,
    truncate_metrics,
    update_meta,
)


def mend(run: Path, cfg) -> tuple[int | None, list[str]]:
    """Make a run directory fit to resume: the step of the checkpoint it resumes from (None: there
    is none yet, so it trains from step 0), and a sentence for each thing mended."""
    damaged, good = [], None  # newest first
    for checkpoint in reversed(list_checkpoints(run)):
        why = checkpoint_problem(checkpoint)
        if why is None:
            good = checkpoint
            break
        damaged.append((checkpoint, why))
    if damaged and good is None:
        raise RunFailed(
            f"{damaged[0][1]}, and no older checkpoint of {run} is intact, so there is nothing to resume from; "
            f"{afresh_command(run)}"
        )
    notes = []
    try:
        read_json(run / "meta.json")
    except BarkError as err:
        problem = err.problem if isinstance(err, Damaged) else "meta.json is missing"
        (run / "meta.json").unlink(missing_ok=True)
        update_meta(run, status="interrupted", **first_meta(cfg))
        notes.append(f"{problem}; rebuilt it from config.yaml")
    bad, torn = bad_lines(run / "metrics.jsonl")
    if torn:
        notes.append("the last line of metrics.jsonl was cut off by a crash; dropped it")
    if bad:
        notes.append(f"metrics.jsonl {lines_are(bad)} not valid JSON; dropped {'it' if len(bad) == 1 else 'them'}")

    step = checkpoint_step(good) if good else None
    for checkpoint, why in damaged:
        aside = checkpoint.with_name(f"damaged-{checkpoint.name}")
        while aside.exists():  # set aside before, by another resume
            aside = aside.with_name(aside.name + "-again")
        os.rename(checkpoint, aside)
        notes.append(f"{why}; set it aside as {aside.relative_to(run)}, and the run resumes from step {step}")
    if good is None:
        notes.append(f"{run} has no checkpoint yet, so it trains from step 0")
    truncate_metrics(run, step or 0)
    return step, notes
