"""One job of a study: train one combination in its run directory, in whatever worker process a
launcher runs it. A job is idempotent: run again, it resumes from its last checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from barkbench.config import RunConfig
from barkbench.errors import BarkError, Interrupted
from barkbench.rundir import now, start_run, truncate_metrics, update_meta
from barkbench.train import train


def cores() -> int:
    """The CPU cores this process may use (a container or taskset can allow fewer than exist)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_job(
    job: dict,
    study: Path,
    on_step: Callable[[dict], None],
    on_start: Callable[[Path], None] = lambda run: None,
    stop_requested: Callable[[], bool] | None = None,
) -> dict:
    """Train one combination: {"status": completed | interrupted | failed, "message": ...}.

    A failure is recorded in the run's meta.json and returned, never raised, so that the other
    runs of the study go on. job: {"index", "name", "config" (a RunConfig as a dict), "run"
    (its directory, or None to create one), "resume" (whether it has a checkpoint to resume)}.
    """
    cfg = RunConfig.model_validate(job["config"])
    run = Path(job["run"]) if job["run"] else None
    try:
        if run is None:
            run = start_run(cfg, study)
        elif not job["resume"]:
            truncate_metrics(run, 0)  # a restart: drop what it wrote before its first checkpoint
        on_start(run)
        train(run, cfg, resume=job["resume"], on_step=on_step, stop_requested=stop_requested)
        return {"status": "completed"}
    except Interrupted as error:
        return {"status": "interrupted", "message": str(error)}  # train saved a checkpoint and said so
    except Exception as error:
        message = str(error) if isinstance(error, BarkError) else f"{type(error).__name__}: {error}"
        if run is not None:  # train records the failures inside its loop, not those before it
            update_meta(run, status="failed", ended=now(), message=message)
        return {"status": "failed", "message": message}
