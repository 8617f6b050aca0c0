"""One job of a study: train one combination in its run directory, in whatever worker process a
launcher runs it. A job is idempotent: run again (a launcher's retry after its worker died, or
`--resume`), it finds the run directory an earlier attempt made and resumes it from its last
checkpoint, so every launcher gets retries for free."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from barkbench.config import RunConfig
from barkbench.errors import BarkError, Interrupted
from barkbench.rundir import list_checkpoints, load_run_config, now, read_json, start_run, truncate_metrics, update_meta
from barkbench.study.plan import study_runs
from barkbench.train import train

EVERY = 0.1  # seconds between two progress events of one run sent to a study's display: it redraws no faster


def throttled(send: Callable[[dict], None], every: float = EVERY) -> Callable[[dict], None]:
    """An on_step that passes a step on to `send` (a queue to the study process, a Ray actor) only
    when a display can show it: every evaluation (the plain progress lines are made of those),
    the last step, and otherwise at most one step each `every` seconds."""
    sent = -every

    def on_step(fields: dict) -> None:
        nonlocal sent
        if fields["evaluated"] or fields["step"] == fields["steps"] or time.monotonic() - sent >= every:
            sent = time.monotonic()
            send(fields)

    return on_step


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
    runs of the study go on. job: {"index", "name", "config" (the combination's RunConfig as a
    dict)}. The run is found by its name among the study's run directories: a new one is made
    for a combination that has none; one that exists goes on from its last checkpoint with its
    own config (the one its checkpoints were made with), or starts again without one. That
    includes a run left `running` by a worker that died: the launcher that runs this job again
    knows that worker is gone (a study process still running is refused earlier, by `todo`).
    """
    run = None
    try:
        run = study_runs(study).get(job["name"])
        if run is None:
            cfg, resume = RunConfig.model_validate(job["config"]), False
            run = start_run(cfg, study)
        else:
            if (run / "meta.json").exists() and read_json(run / "meta.json").get("status") == "completed":
                return {"status": "completed"}  # an earlier attempt finished it, then lost its worker
            cfg, resume = load_run_config(run), bool(list_checkpoints(run))
            if not resume:
                truncate_metrics(run, 0)  # a restart: drop what it wrote before its first checkpoint
        on_start(run)
        train(run, cfg, resume=resume, on_step=on_step, stop_requested=stop_requested)
        return {"status": "completed"}
    except Interrupted as error:
        return {"status": "interrupted", "message": str(error)}  # train saved a checkpoint and said so
    except Exception as error:
        message = str(error) if isinstance(error, BarkError) else f"{type(error).__name__}: {error}"
        if run is not None:  # train records the failures inside its loop, not those before it
            update_meta(run, status="failed", ended=now(), message=message)
        return {"status": "failed", "message": message}
