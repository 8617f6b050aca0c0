"""The Ray launcher: a study's jobs as Ray tasks, on a Ray started inside the command (no
--address) or on a cluster it joins (--address ray://HOST:PORT, HOST:PORT or auto).

Ray is an optional extra (pip install 'barkbench[ray]'): this module imports it inside its
functions only, so the rest of barkbench never needs it.

- One task per job, asking for the CPUs its run trains with (its config's `threads`, which
  train sets as torch's thread count, so a reused worker never keeps another run's) and a GPU
  where the run will train on one.
- Progress: the tasks send their steps to one small actor that the driver drains into the
  usual display. Worker output is not forwarded: Ray prefixes and interleaves it.
- Faults: Ray runs a task again when its worker process or node dies, and the job resumes
  its run from the last checkpoint (study/job.py).
- Stopping: ray.cancel reaches a running task as SIGINT in its main thread (Ray calls
  _thread.interrupt_main there; the workers block the real SIGINT, so Ctrl-C in the terminal
  reaches the driver alone). That is the request to stop that train answers as it does in
  `barkbench train`: a checkpoint, the run marked interrupted, and the task returns. A task
  not begun is dropped from Ray's queue.
- The study directory must be one path that every node sees (a shared filesystem): each node
  is asked at the start, and each task asks again, so a node that cannot see it is an error
  rather than runs that vanish.
"""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from barkbench.display import err, output_closed
from barkbench.errors import BarkError, Interrupted
from barkbench.interrupts import interrupts
from barkbench.rundir import update_meta
from barkbench.study.job import cores, run_job, throttled

RETRIES = 3  # how many times Ray runs a task again after its worker or node died
OBJECT_STORE = 128 * 2**20  # bytes, for the Ray started here: the tasks exchange a few small dicts
PATIENCE = 10  # seconds a node waits for the study directory to appear (NFS caches directory entries)
ADDRESS = re.compile(r"auto|ray://\S+|(?P<host>[^\s:/]+):(?P<port>\d+)")
# The address a Ray started here is told to use, so that its processes talk over loopback. Not
# 127.0.0.1: Ray takes that (and `localhost`) to mean "this machine" and puts the machine's
# network address in its place. On Linux every address of 127.0.0.0/8 is loopback, and Ray keeps
# 127.0.0.2. On macOS and Windows a Ray started alone uses 127.0.0.1 of its own accord.
LOOPBACK = "127.0.0.2" if sys.platform.startswith("linux") else None


def launch(todo: list[dict], study: Path, show, address: str | None = None) -> int | None:
    """Train the jobs as Ray tasks, on a Ray started for this command (no address) or on the
    cluster at `address`; return the signal that interrupted them, or None."""
    import ray

    if address is not None:
        check_address(address)
    study = study.resolve()  # the workers' current directory is not this one
    threads = [job["config"]["threads"] for job in todo]
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init sets its own; it comes back at the end
    try:
        # a Ray started here: as many CPUs as the study can use, up to the cores, and never fewer
        # than its biggest run asks for (that run then shares the cores, as with the local launcher)
        connect(ray, address, cpus=max(max(threads), min(cores(), sum(threads))))
        # After ray.init, so that Ctrl-C and SIGTERM are barkbench's requests to stop. A second
        # one raises KeyboardInterrupt (which Ray's blocking calls pass on as they do a plain
        # Ctrl-C) rather than exiting at once as `train` does, so that ray.shutdown below still
        # stops the tasks and the processes of a Ray started here.
        with interrupts(on_second=stop_now, also=output_closed) as stop:
            try:
                return train_tasks(ray, todo, study, show, stop)
            except KeyboardInterrupt:
                raise Interrupted(
                    "stopped at once; the runs that were training resume from their last checkpoint with: "
                    f"barkbench compare --resume {study}",
                    stop.signum or signal.SIGINT,
                ) from None
    finally:
        ray.shutdown()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)


def stop_now(signum: int) -> None:
    """The second Ctrl-C or SIGTERM: stop waiting for the tasks."""
    raise KeyboardInterrupt


def check_address(address: str) -> None:
    """A well-formed address, and for HOST:PORT something listening there: ray.init waits for
    ever on a port where no cluster answers."""
    form = ADDRESS.fullmatch(address)
    if form is None:
        raise BarkError(f"--address must be ray://HOST:PORT, HOST:PORT or auto, but it is {address!r}")
    if form["host"]:
        try:
            socket.create_connection((form["host"], int(form["port"])), timeout=10).close()
        except OSError as error:
            raise BarkError(
                f"no Ray cluster answers at {address} ({error.strerror or error}); "
                "give the address that `ray start --head` printed"
            ) from None


def connect(ray, address: str | None, cpus: int) -> None:
    """Start a Ray of `cpus` CPUs for this command alone, or join the cluster at `address`.

    A Ray started here is told to use a loopback address (LOOPBACK), and the driver of a cluster
    joined at a loopback address that address: otherwise Ray advertises the machine's network
    address, and its processes talk to one another over it. (Its servers still listen on every
    interface: see the README.)"""
    options = {"log_to_driver": False, "logging_level": logging.WARNING}  # progress comes as events
    if address is None:
        # "local", not None: a bare ray.init() would join a cluster already running on this
        # machine (RAY_ADDRESS, or the last `ray start`), which is never what no address means.
        options |= {"address": "local", "num_cpus": cpus, "include_dashboard": False}
        options |= {"object_store_memory": OBJECT_STORE}
        options |= {"_node_ip_address": LOOPBACK} if LOOPBACK else {}
    else:
        options["address"] = address
        if host := loopback_host(address):  # this machine's nodes are there: the driver is one of them
            options["_node_ip_address"] = host
    try:
        ray.init(**options)
    except Exception as error:  # Ray says what went wrong (no cluster there, a token missing, ...)
        where = f"join the Ray cluster at {address}" if address else "start Ray on this machine"
        raise BarkError(f"could not {where}: {error}") from None


def loopback_host(address: str) -> str | None:
    """The host of a HOST:PORT address on this machine's loopback interface (127.0.0.2:6379), or
    None. (A ray:// address is joined as a client, which has no node address to give.)"""
    form = ADDRESS.fullmatch(address)
    host = form["host"] if form else None
    return host if host and (host == "localhost" or host.startswith("127.")) else None


def train_tasks(ray, todo: list[dict], study: Path, show, stop) -> int | None:
    """One task per job; show their progress until every one has ended; cancel them on a stop."""
    digest = sight(study)
    nodes = check_nodes(ray, study, digest, max(job["config"]["threads"] for job in todo))
    resources = ray.cluster_resources()
    err.print(f"training on Ray: {resources.get('CPU', 0):g} CPUs on {nodes} node(s)", highlight=False)
    events = ray.remote(num_cpus=0)(Events).remote()
    task = ray.remote(run_task)
    waiting = {}  # task -> its job
    for job in todo:
        options = {"num_cpus": job["config"]["threads"], "max_retries": RETRIES, "name": job["name"]}
        options["num_gpus"] = gpus(job["config"]["device"], resources.get("GPU", 0))
        waiting[task.options(**options).remote(job, str(study), digest, events)] = job

    started, ended, unseen = set(), set(), []
    cancelled = False
    while waiting:
        done, _ = ray.wait(list(waiting), num_returns=len(waiting), timeout=0.2)
        for i, fields in ray.get(events.take.remote()):
            if i not in ended:  # an event can come after its task's result
                started.add(i)
                show(i, fields)
        for ref in done:
            job = waiting.pop(ref)
            i = job["index"]
            ended.add(i)
            result = outcome(ray, ref, i in started)
            if result.get("unseen"):
                unseen.append(result["message"])
            elif result["status"] == "dead":  # Ray's reason, which the run directory cannot hold
                err.print(f"{job['name']}: {result['message']}", highlight=False, soft_wrap=True)
            show(i, {"status": result["status"]})
        if (stop.requested or unseen) and not cancelled:
            cancelled = True
            for ref in waiting:
                ray.cancel(ref)
            if stop.requested:
                err.print("interrupted: the running jobs save a checkpoint and stop (Ctrl-C again: stop now)")
    if unseen:
        raise BarkError(f"{unseen[0]}, then finish it with: barkbench compare --resume {study} --launcher ray")
    return stop.signum


def outcome(ray, ref, started: bool) -> dict:
    """What a task returned, or what became of it."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:  # taken off the queue, or cancelled as it began
        return {"status": "interrupted" if started else "not started"}
    except ray.exceptions.RayError as error:  # its worker or node died more times than Ray retries
        return {"status": "dead", "message": reason(error)}


def gpus(device: str, cluster_gpus: float) -> int:
    """A GPU for a run that will train on one: device cuda, or auto on a cluster that has GPUs."""
    return int(device == "cuda" or (device == "auto" and cluster_gpus > 0))


# ---- the study directory, as each node sees it ------------------------------------------------


def sight(study: Path) -> str | None:
    """What this machine sees at the study's path: a digest of its study.yaml, or None."""
    path = study / "study.yaml"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def unseen(study: str, digest: str) -> str | None:
    """Why this machine cannot work in the study directory the driver made, or None."""
    deadline = time.monotonic() + PATIENCE
    while sight(Path(study)) != digest:
        if time.monotonic() > deadline:
            return (
                f"the Ray node on {socket.gethostname()} cannot see the study directory {study}; "
                "put the study on a filesystem that every node mounts at the same path"
            )
        time.sleep(0.5)
    return None


def check_nodes(ray, study: Path, digest: str, threads: int) -> int:
    """Check that some node has the CPUs of the biggest run (a task that fits nowhere would wait
    forever) and that every node that can train sees the study directory; how many there are."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
    biggest = max((n["Resources"]["CPU"] for n in nodes), default=0)
    if threads > biggest:
        raise BarkError(
            f"a run of the study trains with threads={threads}, but the largest Ray node has {biggest:g} CPUs; "
            "lower threads or add a bigger node"
        )
    probe = ray.remote(num_cpus=0)(unseen)
    pinned = [NodeAffinitySchedulingStrategy(n["NodeID"], soft=False) for n in nodes]
    try:
        problems = ray.get([probe.options(scheduling_strategy=s).remote(str(study), digest) for s in pinned])
    except ray.exceptions.RayError as error:  # barkbench missing on a node, most often
        raise BarkError(
            f"a Ray node could not run barkbench ({reason(error)}); install barkbench on every node"
        ) from None
    for problem in problems:
        if problem:
            raise BarkError(problem)
    return len(nodes)


def reason(error: Exception) -> str:
    """What went wrong in Ray, in one line: the task's own exception, or Ray's first line."""
    cause = getattr(error, "cause", None)  # what a task raised, inside Ray's RayTaskError
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(error).strip().splitlines()[0]


# ---- in the workers ----------------------------------------------------------------------------


class Events:
    """The actor that holds what the tasks report, (job index, fields), until the driver takes it."""

    def __init__(self):
        self.items: list = []

    def put(self, item) -> None:
        self.items.append(item)

    def take(self) -> list:
        items, self.items = self.items, []
        return items


def run_task(job: dict, study: str, digest: str, events) -> dict:
    """One job in a Ray worker. Its stop request is set first of all, so that a cancel that
    lands before train's own handler (or after it) asks the run to stop rather than raising
    KeyboardInterrupt somewhere in between."""
    import ray

    with interrupts() as stop:
        problem = unseen(study, digest)
        if problem:
            return {"status": "failed", "message": problem, "unseen": True}
        if stop.requested:  # cancelled as it began: leave the run to --resume
            return {"status": "not started"}
        i, node = job["index"], ray.get_runtime_context().get_node_id()
        on_step = throttled(lambda fields: events.put.remote((i, fields)))  # not waited for: the step goes on

        def on_start(run: Path) -> None:
            update_meta(run, ray_node=node)  # which node trained it, beside meta's host and pid
            events.put.remote((i, {"status": "running"}))

        return run_job(job, Path(study), on_step, on_start, stop_requested=lambda: stop.requested)
