"""The local launcher: a study's jobs on this machine's cores, in worker processes (or in this
process, one after another, with --jobs 1)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path
from queue import Empty

from barkbench.display import err, output_closed
from barkbench.errors import BarkError
from barkbench.interrupts import interrupts
from barkbench.study.job import cores, run_job, slower, throttled


def launch(todo: list[dict], study: Path, show, jobs: int | None = None) -> int | None:
    """Train the jobs, `jobs` at a time (default: as many as the cores hold, each run taking the
    threads its config asks for); return the signal that interrupted them, or None."""
    if jobs is not None and jobs < 1:
        raise BarkError(f"--jobs must be at least 1, but it is {jobs}")
    threads = max(job["config"]["threads"] for job in todo)
    fit = max(1, cores() // threads)  # more at once only share the cores, and each goes slower
    if note := slower(threads):
        err.print(note, highlight=False)
    capped = jobs is not None and jobs > fit
    said = f"--jobs {jobs} is more than the {cores()} cores here can train at threads={threads}; " if capped else ""
    jobs = min(fit if capped else jobs or fit, len(todo))
    err.print(f"{said}training {jobs} at a time", highlight=False)
    if jobs == 1:
        return _here(todo, study, show)
    return _in_workers(todo, study, jobs, show)


def _here(todo: list[dict], study: Path, show) -> int | None:
    """One after another in this process; each run handles Ctrl-C itself, and the study stops
    at an interrupted one."""
    for job in todo:
        i = job["index"]
        show(i, {"status": "running"})
        result = run_job(job, study, lambda f, i=i: show(i, f), stop_requested=output_closed)
        show(i, {"status": result["status"]})
        if result["status"] == "interrupted":
            return output_closed() or signal.SIGINT
    return None


# Worker process state, set once by the pool's initializer.
_events = None  # queue of ("start", index, pid) and ("step", index, fields) to the parent
_stop = None  # set by the parent on Ctrl-C / SIGTERM


def _start_worker(events, stop) -> None:
    global _events, _stop
    # Ctrl-C in the terminal reaches the parent alone; it asks each worker to stop through `stop`,
    # and the worker stops the way `train` stops on a signal: checkpoint, mark interrupted, exit.
    os.setpgrp()
    _events, _stop = events, stop


def _work(job: dict, study: str) -> dict:
    if _stop.is_set():  # the study was interrupted before this job began
        return {"status": "not started"}
    i = job["index"]
    return run_job(
        job,
        Path(study),
        on_step=throttled(lambda fields: _events.put(("step", i, fields))),
        on_start=lambda run: _events.put(("start", i, os.getpid())),
        stop_requested=_stop.is_set,
    )


def _in_workers(todo: list[dict], study: Path, jobs: int, show) -> int | None:
    ctx = multiprocessing.get_context("spawn")  # fork with torch's threads can deadlock
    events, stop_workers = ctx.Queue(), ctx.Event()
    pids: dict[int, int] = {}  # job index -> pid of the worker training it

    def drain():
        while True:
            try:
                kind, i, payload = events.get_nowait()
            except Empty:
                return
            if kind == "start":
                pids[i] = payload
                show(i, {"status": "running"})
            else:
                show(i, payload)

    def stop_now(signum):  # a second Ctrl-C: the workers exit at once too (train exits at a second signal)
        for pid in pids.values():
            os.kill(pid, signal.SIGTERM)

    with (
        interrupts(stop_now, also=output_closed) as stop,
        ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_start_worker, initargs=(events, stop_workers)) as pool,
    ):
        futures = {pool.submit(_work, job, str(study)): job["index"] for job in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2)
            drain()
            for future in done:
                i = futures[future]
                pids.pop(i, None)
                try:
                    status = "not started" if future.cancelled() else future.result()["status"]
                except Exception:  # its worker process died (killed, out of memory)
                    status = "dead"
                show(i, {"status": status})
            if stop.requested and not stop_workers.is_set():
                stop_workers.set()
                for future in pending:
                    future.cancel()  # those not begun yet
                err.print("interrupted: the running jobs save a checkpoint and stop (Ctrl-C again: stop now)")
        drain()
    return stop.signum
