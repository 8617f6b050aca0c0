"""The compare study: every model x seed x sweep value trained as its own run directory inside
one study directory (barkbench/findings.py then reports over them).

A study directory holds `study.yaml` (the compare config with its base written inline and every
override applied to it, so it needs nothing outside itself), one run directory per
combination, and the report. A combination is matched to its run directory by the run's
config `name`, which says what the run is ("lstm-s1", "rnn-s0-max_gap32"): that is how
`--resume` and `barkbench report` find the runs again.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import re
import signal
from concurrent.futures import ProcessPoolExecutor, wait
from itertools import product
from pathlib import Path
from queue import Empty
from typing import Annotated, Any, Callable, Optional

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from barkbench.config import RunConfig, apply_overrides, describe_errors, problems_to_error, read_yaml, validate
from barkbench.errors import BarkError
from barkbench.models import build_model, count_params
from barkbench.report import err, study_progress
from barkbench.rundir import (
    create_run_dir,
    list_checkpoints,
    now,
    read_json,
    shown_status,
    truncate_metrics,
    update_meta,
    write_atomic,
)
from barkbench.train import EXIT_ON_SIGNAL, load_run_config, start_run, train


class CompareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("compare", description="the study directory's name starts with it")
    base: Any = Field(None, validate_default=True, description="a training config path or an inline mapping")
    models: list[dict[str, Any]] = Field(None, validate_default=True, description="each overrides base's model")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted key -> value, applied to base")
    seeds: list[Annotated[int, Field(ge=0)]] = Field([0], min_length=1)
    sweep: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name):
        return RunConfig._plain_name(name)

    @field_validator("base")
    @classmethod
    def _path_or_mapping(cls, base):
        if not isinstance(base, (str, dict)):
            raise ValueError(
                "base must be the path of a training config (relative to the compare file), such as "
                f"base: ../echo_gpt.yaml, or an inline mapping with task:, model:, train: sections; it is {base!r}"
            )
        return base

    @field_validator("models", mode="before")
    @classmethod
    def _some_models(cls, models):
        if not models:
            raise ValueError("models must list at least one model section, such as models: [{name: rnn}, {name: gpt}]")
        return models

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds):
        if len(set(seeds)) < len(seeds):
            raise ValueError(f"seeds ({seeds}) repeats a seed; each seed trains one run per model, so list each once")
        return seeds

    @field_validator("sweep", mode="before")
    @classmethod
    def _sweep_lists(cls, sweep):
        if not isinstance(sweep, dict):
            return sweep  # pydantic names the type problem
        problems = [
            f"sweep.{key} must be a non-empty list of values, such as [32, 128], but it is {values!r}"
            for key, values in sweep.items()
            if not isinstance(values, list) or not values
        ]
        problems += [
            f"sweep cannot set {key!r}: the study names its runs, and seeds: lists the seeds"
            for key in sweep
            if key in ("name", "seed")
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return sweep


# ---- planning: the compare config, expanded and validated ---------------------------------


def plan(data: dict, source: str, where: Path, overrides: list[str] = ()) -> tuple[dict, list[dict]]:
    """The resolved compare config (base inline) and its combinations, each with its validated
    RunConfig; or one BarkError naming every problem in the compare config, its base and its runs."""
    messages = []
    try:
        spec = CompareConfig.model_validate(data)
    except ValidationError as err:
        messages.append(str(problems_to_error(describe_errors(err, CompareConfig), source)))
        spec = None

    base_text = data.get("base")
    base, base_cfg = None, None
    if isinstance(base_text, dict):
        base, base_source = copy.deepcopy(base_text), f"{source} (base)"
    elif isinstance(base_text, str):
        base_source = str(where / base_text)
        try:
            base = read_yaml(where / base_text)
        except BarkError as err:
            messages.append(f"{source}: base: {err}")
    if base is not None:
        # the file's overrides first, then the command line's
        written = data.get("overrides") if isinstance(data.get("overrides"), dict) else {}
        try:
            base_cfg = validate(base, base_source, apply_overrides(base, as_overrides(written) + list(overrides)))
        except BarkError as err:
            messages.append(str(err))

    # The runs are checked only on a sound compare config and base, so each problem is said once.
    combos = expand(spec, base, base_cfg) if spec and base_cfg else []
    failed: set = set()
    for combo in combos:
        key = (combo["label"], json.dumps(combo["sweep"]))
        if key in failed:  # the same problem again for another seed
            continue
        try:
            combo["config"] = validate(combo.pop("data"), f"run {combo['name']}", combo.pop("problems"))
        except BarkError as err:
            failed.add(key)
            messages.append(str(err))
    if messages:
        raise BarkError("\n".join(messages))
    # the overrides are applied to base already: study.yaml holds the base as the runs saw it
    resolved = {"name": spec.name, "base": base, **spec.model_dump(include={"models", "seeds", "sweep"})}
    return resolved, combos


def expand(spec: CompareConfig, base: dict, base_cfg: RunConfig) -> list[dict]:
    """One combination per model entry x seed x sweep value: its name, label, seed, sweep values,
    the training config mapping and the problems found while building it."""
    labels = model_labels(spec.models, base_cfg.model.name)
    leaves = [key.rsplit(".", 1)[-1] for key in spec.sweep]
    short = leaves if len(set(leaves)) == len(leaves) else list(spec.sweep)  # "max_gap", unless ambiguous
    combos = []
    for entry, label in zip(spec.models, labels):
        for seed in spec.seeds:
            for values in product(*spec.sweep.values()):
                sweep = dict(zip(spec.sweep, values))
                data = copy.deepcopy(base)
                model = data.get("model") if isinstance(data.get("model"), dict) else {}
                data["model"] = {**model, **entry}
                data["seed"] = seed
                data["name"] = f"{label}-s{seed}" + "".join(f"-{setting(s, v)}" for s, v in zip(short, values))
                problems = apply_overrides(data, as_overrides(sweep))
                combos.append(
                    {
                        "name": data["name"],
                        "label": label,
                        "group": " ".join([label] + [f"{s}={v}" for s, v in zip(short, values)]),
                        "seed": seed,
                        "sweep": sweep,
                        "data": data,
                        "problems": problems,
                    }
                )
    return combos


def as_overrides(values: dict) -> list[str]:
    """Dotted key -> value as KEY=VALUE overrides; JSON is YAML, so each value arrives as written."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def model_labels(models: list[dict], default: str) -> list[str]:
    """A label per model entry: its model name, plus the settings that tell apart entries that
    share a name ("rnn-hidden_size32", "rnn-hidden_size64")."""
    names = [entry.get("name", default) for entry in models]
    labels = []
    for entry, name in zip(models, names):
        twins = [m for m, n in zip(models, names) if n == name]
        differing = sorted({k for m in twins for k in m if k != "name" and len({repr(t.get(k)) for t in twins}) > 1})
        labels.append(name + "".join(f"-{setting(k, entry[k])}" for k in differing if k in entry))
    # entries that still look alike (the same settings twice) get their position
    return [f"{label}-{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def setting(key: str, value) -> str:
    """A key and its value as they can appear in a directory name: "max_gap32", "attention_none"."""
    sep = "" if isinstance(value, (int, float)) else "_"
    return key + sep + re.sub(r"[^A-Za-z0-9._-]+", "_", str(value))


def start_study(path: Path, overrides: list[str], runs_dir: Path) -> Path:
    """Validate a compare config and its runs; only then create the study directory and study.yaml."""
    spec, _ = plan(read_yaml(path), str(path), path.parent, overrides)
    study = create_run_dir(Path(runs_dir), spec["name"])
    header = (
        f"# The study as run: {path}, its base written inline with the overrides applied"
        + (f" (on the command line: {' '.join(overrides)})" if overrides else "")
        + f".\n# Resume it with: barkbench compare --resume {study}\n"
    )
    write_atomic(study / "study.yaml", header + yaml.safe_dump(spec, sort_keys=False))
    return study


def load_study(study: Path) -> list[dict]:
    """The combinations of a study directory, from its study.yaml."""
    if not (study / "study.yaml").exists():
        raise BarkError(
            f"{study} is not a barkbench study directory (it has no study.yaml); "
            "give a directory that `barkbench compare` created"
        )
    return plan(read_yaml(study / "study.yaml"), str(study / "study.yaml"), study)[1]


def study_runs(study: Path) -> dict[str, Path]:
    """The study's run directories by their config name (the newest one if a name repeats)."""
    runs = sorted(study.glob("*/config.yaml"), key=lambda p: p.stat().st_mtime)
    return {read_yaml(p).get("name"): p.parent for p in runs}


# ---- training: in this process, or in worker processes ------------------------------------


def cores() -> int:
    """The CPU cores this process may use (a container or taskset can allow fewer than exist)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_study(study: Path, jobs: Optional[int] = None) -> bool:
    """Train every combination of the study that has not completed: completed runs are kept,
    runs with a checkpoint resume, the rest start (again). Returns whether it was interrupted."""
    combos = load_study(study)
    runs = study_runs(study)
    todo = []
    for combo in combos:
        run = runs.get(combo["name"])
        job = {"name": combo["name"], "config": combo["config"].model_dump(), "run": None, "resume": False, "start": 0}
        if run is not None:
            meta = read_json(run / "meta.json") if (run / "meta.json").exists() else {}
            status = shown_status(meta)
            if status == "completed":
                continue
            if status == "running":
                raise BarkError(
                    f"run {run} is still running (pid {meta.get('pid')}); wait for that study to finish or stop it first"
                )
            cfg = load_run_config(run)  # its own config: the one its checkpoints were made with
            resume = bool(list_checkpoints(run))
            job.update(config=cfg.model_dump(), run=str(run), resume=resume, start=meta.get("step", 0) if resume else 0)
        todo.append(job)
    if not todo:
        return False
    todo.sort(key=size, reverse=True)
    todo = [{**job, "index": i} for i, job in enumerate(todo)]
    jobs = min(jobs or cores(), len(todo))
    threads = max(1, cores() // jobs)
    kept = len(combos) - len(todo)
    err.print(
        f"{len(todo)} runs to train"
        + (f" ({kept} completed runs kept)" if kept else "")
        + f", {jobs} at a time"
        + (f", {threads} thread{'s' * (threads > 1)} each" if jobs > 1 else ""),
        highlight=False,
    )
    with study_progress(
        [j["name"] for j in todo], [j["config"]["train"]["steps"] for j in todo], [j["start"] for j in todo]
    ) as show:
        if jobs == 1:
            return train_here(todo, study, show)
        return train_in_workers(todo, study, jobs, threads, show)


def size(job: dict) -> int:
    """Parameters x steps still to train: what a job costs, roughly. The biggest start first, so
    that the last job to start is a short one and no worker sits idle while one long run finishes alone."""
    cfg = RunConfig.model_validate(job["config"])
    return count_params(build_model(cfg.model)) * (cfg.train.steps - job["start"])


def run_job(job: dict, study: Path, report: Callable[[dict], None], started: Callable[[Path], None]) -> dict:
    """Train one combination in its run directory. A failure is recorded in the run's meta.json
    and returned, never raised, so that the other runs of the study go on."""
    cfg = RunConfig.model_validate(job["config"])
    run = Path(job["run"]) if job["run"] else None
    try:
        if run is None:
            run = start_run(cfg, study)
        elif not job["resume"]:
            truncate_metrics(run, 0)  # a restart: drop what it wrote before its first checkpoint
        started(run)
        train(run, cfg, resume=job["resume"], report=report)
        return {"status": "completed"}
    except Exception as error:
        if isinstance(error, BarkError) and error.code in EXIT_ON_SIGNAL.values():
            return {"status": "interrupted", "message": str(error)}  # train saved a checkpoint and said so
        message = str(error) if isinstance(error, BarkError) else f"{type(error).__name__}: {error}"
        if run is not None:  # train records the failures inside its loop, not those before it
            update_meta(run, status="failed", ended=now(), message=message)
        return {"status": "failed", "message": message}


def train_here(todo: list[dict], study: Path, show) -> bool:
    """Train the jobs one after another in this process; stop at an interrupted one."""
    for job in todo:
        i = job["index"]
        show(i, {"status": "running"})
        result = run_job(job, study, lambda f, i=i: show(i, f), lambda run: None)
        show(i, {"status": result["status"]})
        if result["status"] == "interrupted":
            return True
    return False


# Worker process state, set once by the pool's initializer.
_events = None  # queue of ("start", index, run, pid) and ("step", index, fields) to the parent
_stop = None  # set by the parent on Ctrl-C / SIGTERM


def _start_worker(events, stop, threads: int) -> None:
    global _events, _stop
    # Ctrl-C in the terminal reaches the parent alone; it asks each worker to stop through `stop`,
    # and the worker stops the way `train` stops on a signal: checkpoint, mark interrupted, exit.
    os.setpgrp()
    torch.set_num_threads(threads)  # the cores split between the jobs, so they do not fight over threads
    _events, _stop = events, stop


def _work(job: dict, study: str) -> dict:
    if _stop.is_set():  # the study was interrupted before this job began
        return {"status": "not started"}
    i, signalled = job["index"], []

    def report(fields: dict) -> None:
        _events.put(("step", i, fields))
        if _stop.is_set() and not signalled:
            signalled.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # caught by train's handler

    return run_job(job, Path(study), report, lambda run: _events.put(("start", i, str(run), os.getpid())))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def train_in_workers(todo: list[dict], study: Path, jobs: int, threads: int, show) -> bool:
    """Train the jobs in `jobs` spawned worker processes, showing every one in one display."""
    ctx = multiprocessing.get_context("spawn")  # fork with torch's threads can deadlock
    events, stop = ctx.Queue(), ctx.Event()
    pids: dict[int, int] = {}  # job index -> pid of the worker training it
    interrupted = False

    def drain():
        while True:
            try:
                event = events.get_nowait()
            except Empty:
                return
            if event[0] == "start":
                pids[event[1]] = event[3]
                show(event[1], {"status": "running"})
            else:
                show(event[1], event[2])

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_start_worker, initargs=(events, stop, threads)
        ) as pool:
            futures = {pool.submit(_work, job, str(study)): job["index"] for job in todo}
            pending = set(futures)
            while pending:
                try:
                    done, pending = wait(pending, timeout=0.2)
                    drain()
                    for future in done:
                        i = futures[future]
                        pids.pop(i, None)
                        if future.cancelled():
                            status = "not started"
                        else:
                            try:
                                status = future.result()["status"]
                            except Exception:  # its worker process died (killed, out of memory)
                                status = "dead"
                        show(i, {"status": status})
                except KeyboardInterrupt:
                    if interrupted:  # a second one: stop the workers now (train exits at a second signal)
                        for pid in pids.values():
                            os.kill(pid, signal.SIGTERM)
                        raise
                    interrupted = True
                    stop.set()
                    for future in pending:
                        future.cancel()  # those not begun yet
                    err.print("interrupted: the running jobs save a checkpoint and stop (Ctrl-C again: stop now)")
            drain()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return interrupted
