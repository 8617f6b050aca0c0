"""Running a study: which of its combinations are left to train, and the launchers that train
them, found by name in LAUNCHERS.

A launcher is a function

    launch(todo, study, show, **options) -> the signal that interrupted it, or None

that trains every job of `todo` (barkbench/study/job.py runs one), calls show(index, fields)
as they go (a step's figures, or {"status": ...}), stops them at a checkpoint on Ctrl-C or
SIGTERM (its own signal handling), and leaves the rest to the run directories, which are the
same whichever launcher wrote them. So `--resume` works with any launcher.

The launchers: local (study/local.py, worker processes on this machine) and ray
(study/ray_cluster.py, Ray tasks on a cluster), whose package is an optional extra (NEEDS),
checked with the other options before anything is written.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from pathlib import Path

from barkbench.display import err, study_progress
from barkbench.errors import BarkError
from barkbench.rundir import list_checkpoints, problems, readable, shown_status
from barkbench.study import local, ray_cluster
from barkbench.study.plan import load_study, study_runs

LAUNCHERS = {
    "local": local.launch,
    "ray": ray_cluster.launch,
}
# What a launcher needs beyond barkbench's own dependencies: the package it imports, which the
# extra of the launcher's name installs (pip install 'barkbench[ray]').
NEEDS = {"ray": "ray"}


def todo(study: Path) -> tuple[list[dict], int]:
    """The jobs of a study that have not completed, biggest first, and how many completed runs
    are kept. Each job finds its own run directory (study/job.py); here a run only says where
    its progress starts (its last checkpoint), or that it is still running in another study
    process, which is refused. A completed run that is damaged is a job too: resuming it mends it
    (barkbench/repair.py)."""
    combos = load_study(study)
    runs = study_runs(study)
    jobs = []
    for combo in combos:
        run = runs.get(combo["name"])
        job = {"name": combo["name"], "config": combo["config"].model_dump(), "start": 0}
        if run is not None:
            meta = readable(run / "meta.json")
            status = shown_status(meta)
            if status == "completed" and not problems(run):
                continue
            if status == "running":
                raise BarkError(
                    f"run {run} is still running (pid {meta.get('pid')}); wait for that study to finish or stop it first"
                )
            job["start"] = meta.get("step", 0) if list_checkpoints(run) else 0
        jobs.append(job)
    jobs.sort(key=size, reverse=True)
    return [{**job, "index": i} for i, job in enumerate(jobs)], len(combos) - len(jobs)


def size(job: dict) -> int:
    """Parameters x tokens still to train (steps x the longest sequence): what a job costs,
    roughly. The biggest start first, so that the last job to start is a short one and no worker
    sits idle while one long run finishes alone."""
    from barkbench.config import RunConfig
    from barkbench.models import build_model, count_params

    cfg = RunConfig.model_validate(job["config"])
    tokens = (cfg.train.steps - job["start"]) * cfg.longest_sequence()
    return count_params(build_model(cfg.model, len(cfg.vocab))) * tokens


def launcher(name: str, **options):
    """The named launcher with the options given (those left None are not given), checked before
    anything is written: launcher(todo, study, show) -> the signal that interrupted it, or None."""
    if name not in LAUNCHERS:
        raise BarkError(f"--launcher {name!r} is not one of: {', '.join(LAUNCHERS)}")
    if problem := missing(name):
        raise BarkError(problem)
    launch = LAUNCHERS[name]
    given = {k: v for k, v in options.items() if v is not None}
    for key in given:
        if key not in inspect.signature(launch).parameters:
            raise BarkError(f"--{key} is not an option of --launcher {name}; drop it")
    return functools.partial(launch, **given)


def missing(name: str) -> str | None:
    """Why the named launcher cannot run here (the package it needs is not installed), or None."""
    if name not in NEEDS:
        return None
    try:
        importlib.import_module(NEEDS[name])
    except ImportError:
        return f"--launcher {name} needs {NEEDS[name]}, which is not installed; pip install 'barkbench[{name}]'"
    return None


def run_study(study: Path, launch=None) -> int | None:
    """Train every combination of the study that has not completed, with a launcher (default:
    local); return the signal that interrupted it, or None."""
    launch = launch or launcher("local")
    jobs, kept = todo(study)
    if not jobs:
        return None
    from barkbench.config import RunConfig
    from barkbench.tasks import task_of

    err.print(f"{len(jobs)} runs to train" + f" ({kept} completed runs kept)" * bool(kept), highlight=False)
    names, steps, start = ([j[k] for j in jobs] for k in ("name", "config", "start"))
    content = task_of(RunConfig.model_validate(jobs[0]["config"]).task).content  # every run has the study's task
    with study_progress(names, [c["train"]["steps"] for c in steps], start, content) as show:
        return launch(jobs, study, show)
