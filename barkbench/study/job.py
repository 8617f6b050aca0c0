"""One job of a study: train one combination in its run directory, in whatever worker process a
launcher runs it. A job is idempotent: run again (a launcher's retry after its worker died, or
`--resume`), it finds the run directory an earlier attempt made and resumes it from its last
checkpoint, so every launcher gets retries for free."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from barkbench.config import RunConfig, to_yaml
from barkbench.display import err
from barkbench.errors import BarkError, Interrupted
from barkbench.repair import mend
from barkbench.rundir import load_run_config, now, problems, readable, start_run, update_meta, write_atomic
from barkbench.study.plan import study_runs
from barkbench.yamlfile import read_yaml

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


def slower(threads: int) -> str | None:
    """The line for a run that asks for more threads than there are cores here, or None. The run
    keeps them: its thread count is part of what makes its figures what they are."""
    if threads <= cores():
        return None
    return (
        f"threads={threads} is more than the {cores()} cores here, so the run will be slower than at "
        f"threads={cores()}; it keeps threads={threads}, which is part of what makes its figures reproducible"
    )


def torn_config(run: Path, job: dict) -> str | None:
    """Why a study run's config.yaml is damaged, or None: it does not parse, or it is cut short of
    the config the study gave it (what is left of a cut file may still parse)."""
    try:
        read_yaml(run / "config.yaml")
    except BarkError as error:
        return str(error)
    text, whole = (run / "config.yaml").read_text(), to_yaml(RunConfig.model_validate(job["config"]))
    return f"{run / 'config.yaml'} is cut short" if text != whole and whole.startswith(text) else None


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
    from barkbench.train import train  # torch: in the worker, once there is a run to train

    run = None
    try:
        run = study_runs(study).get(job["name"])
        if run is None:
            cfg, resume = RunConfig.model_validate(job["config"]), False
            run = start_run(cfg, study)
        else:
            if readable(run / "meta.json").get("status") == "completed" and not problems(run):
                return {"status": "completed"}  # an earlier attempt finished it, then lost its worker
            if problem := torn_config(run, job):  # damaged: study.yaml says what it was
                write_atomic(run / "config.yaml", to_yaml(RunConfig.model_validate(job["config"])))
                err.print(f"{job['name']}: {problem}; wrote it again from study.yaml", highlight=False, soft_wrap=True)
            cfg = load_run_config(run)
            # what is damaged mended, then on from its last intact checkpoint (none: from step 0)
            step, mended = mend(run, cfg)
            resume = step is not None
            for line in mended:
                err.print(f"{job['name']}: {line}", highlight=False, soft_wrap=True)
        on_start(run)
        train(run, cfg, resume=resume, on_step=on_step, stop_requested=stop_requested)
        return {"status": "completed"}
    except Interrupted as error:
        return {"status": "interrupted", "message": str(error)}  # train saved a checkpoint and said so
    except Exception as error:
        message = str(error) if isinstance(error, BarkError) else f"{type(error).__name__}: {error}"
        if not isinstance(error, BarkError):  # whose message says what to do
            message += (
                f"; once its cause is fixed, `barkbench compare --resume {study}` goes on from its last checkpoint"
            )
        if run is not None:  # train records the failures inside its loop, not those before it
            update_meta(run, status="failed", ended=now(), message=message)
        return {"status": "failed", "message": message}
