"""The Ray launcher on a real Ray on this machine (CI has no cluster): a head started apart and
joined by its address, a worker killed in the middle of a run, Ctrl-C then --resume, SIGTERM,
two nodes, and a node that cannot see the study directory. (That a Ray started by the command
gives the local launcher's figures: the launcher contract test in test_study.py.)

Every Ray here is small (a few CPUs: at most one per run of a 4-run study; a small object store;
no dashboard) and private to this module: RAY_TMPDIR sends its files, and the address that
`ray start` records for `auto`, into a directory of its own, so nothing here meets a Ray of
another process on the machine; and the only Ray processes a test stops are the ones it
started, by the process group it gave them. Every node and driver here uses a loopback address
(ray_cluster.LOOPBACK), so no test sends Ray's traffic over the machine's network address.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from helpers import (
    ENV,
    SMOKE,
    Proc,
    all_figures,
    cli,
    meta,
    metrics,
    only_run,
    result_figures,
    results,
    runs_by_name,
    train_config,
    wait_for,
)

from barkbench.study.ray_cluster import LOOPBACK

pytest.importorskip("ray", reason="Ray is not installed: pip install 'barkbench[ray]' (make install does)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(LOOPBACK is None, reason="a cluster on loopback needs Linux's 127.0.0.0/8"),
]

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE = str(100 * 2**20)
# Runs of a few steps, and runs long enough to be caught after a checkpoint (200 steps, one every 20).
QUICK = ["train.steps=6", "train.eval_every=3", "task.train_size=64", "task.val_size=32", "sample.num_samples=1"]
LONG = ["train.steps=200", "train.eval_every=20", "train.checkpoint_every=20", "task.train_size=256"]
LONG += ["task.val_size=32", "sample.num_samples=1"]


@pytest.fixture(scope="module")
def ray_env():
    """The environment of every Ray process here: this module's own RAY_TMPDIR (short, for Ray's
    socket paths) and a token of its own, which a cluster joined by address asks for."""
    tmp = tempfile.mkdtemp(prefix="bbray-", dir="/tmp")
    yield {**ENV, "RAY_TMPDIR": tmp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    shutil.rmtree(tmp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hiding(directory: Path) -> list[str]:
    """The command prefix that runs a command in a mount namespace of its own, where `directory`
    is an empty tmpfs: a machine that does not share that directory with this one."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount -t tmpfs none "$0" && exec "$@"',
        str(directory),
    ]


def can_hide(directory: Path) -> bool:
    """Whether this machine lets a test hide a directory from a process (root, and unshare)."""
    return shutil.which("unshare") is not None and subprocess.run([*hiding(directory), "true"]).returncode == 0


@contextmanager
def cluster(env: dict, logs: Path, *cpus: int, hidden: Path | None = None):
    """A Ray cluster of `ray start --block` processes on this machine, one node per entry of
    cpus (the first is the head; the others, given `hidden`, cannot see that directory); yields
    its address. Each node has a process group of its own: SIGTERM lets it stop what it started,
    then whatever is left of that group is killed."""
    port = free_port()
    address = f"{LOOPBACK}:{port}"
    nodes = []
    try:
        for i, n in enumerate(cpus):
            where = ["--address", address, "--node-ip-address", LOOPBACK]
            if i == 0:
                where = ["--head", "--node-ip-address", LOOPBACK, "--port", str(port), "--include-dashboard=false"]
            log = logs / f"node{i}.log"
            args = [RAY, "start", *where, "--num-cpus", str(n), "--object-store-memory", OBJECT_STORE, "--block"]
            args += ["--dashboard-agent-listen-port", str(free_port())]
            if i > 0 and hidden is not None:
                args = hiding(hidden) + args
            with open(log, "w") as out:
                nodes.append(
                    subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                )
            deadline = time.monotonic() + 60
            while "block forever" not in log.read_text():  # what `ray start` says once the node is up
                assert nodes[-1].poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield address
    finally:
        for node in reversed(nodes):
            node.terminate()
        for node in nodes:
            try:
                node.wait(40)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            node.wait()


def checkpointed(runs: Path) -> list[Path]:
    """The runs of the study under `runs` that have saved a checkpoint (their meta.json says so)."""
    return [path.parent for path in runs.glob("*/*/meta.json") if meta(path.parent).get("step", 0) > 0]


def test_a_head_started_apart_is_joined_by_its_address_and_gives_the_local_figures(tmp_path, ray_env):
    args = ["compare", "--config", SMOKE, "threads=2", *QUICK]  # 2 threads: a task asks for the head's 2 CPUs
    with cluster(ray_env, tmp_path, 2) as address:
        joined = Proc(
            [*args, "--runs-dir", tmp_path / "ray", "--launcher", "ray", "--address", address], tmp_path, "ray", ray_env
        )
        assert joined.wait() == 0, joined.stderr
    assert "training on Ray: 2 CPUs on 1 node(s)" in joined.stderr
    local = cli(*args, "--runs-dir", tmp_path / "local", "--jobs", "1")
    assert local.exit_code == 0, local.output
    study = only_run(tmp_path / "ray")
    assert result_figures(study) == result_figures(only_run(tmp_path / "local"))
    assert {meta(run)["threads"] for run in runs_by_name(study).values()} == {2}


@pytest.mark.parametrize(
    "address, words", [("not an address", "--address must be"), ("127.0.0.1:{port}", "no Ray cluster answers at")]
)
def test_an_address_where_no_cluster_answers_is_a_clear_error_at_once(tmp_path, address, words):
    args = ["compare", "--config", SMOKE, "--runs-dir", tmp_path / "runs", *QUICK, "--launcher", "ray"]
    result = cli(*args, "--address", address.format(port=free_port()))  # a port where nothing listens
    assert result.exit_code == 2, result.output
    assert words in result.stderr and "Traceback" not in result.output


def test_a_worker_killed_mid_run_is_retried_and_the_run_resumes_to_the_figures_of_an_uninterrupted_one(
    tmp_path, ray_env
):
    runs = tmp_path / "runs"
    proc = Proc(
        ["compare", "--config", SMOKE, "--runs-dir", runs, "--launcher", "ray", *LONG], tmp_path, "kill", ray_env
    )
    try:
        wait_for(lambda: checkpointed(runs), proc, what="a checkpoint")
        run = checkpointed(runs)[0]
        killed = meta(run)
        os.kill(killed["pid"], signal.SIGKILL)  # the Ray worker training it: Ray runs its task again
        assert proc.wait() == 0, proc.stderr
    finally:
        proc.kill_if_running()
    assert 0 < killed["step"] < 200
    assert meta(run)["status"] == "completed" and meta(run)["pid"] != killed["pid"]
    uninterrupted = train_config(yaml.safe_load((run / "config.yaml").read_text()), tmp_path / "reference")
    assert all_figures(run) == all_figures(uninterrupted)
    assert [row["status"] for row in results(only_run(runs))["runs"]] == ["completed"] * 4


def test_ctrl_c_stops_a_ray_study_at_checkpoints_and_resume_finishes_it_training_nothing_twice(tmp_path, ray_env):
    runs = tmp_path / "runs"
    proc = Proc(
        ["compare", "--config", SMOKE, "--runs-dir", runs, "--launcher", "ray", *LONG], tmp_path, "int", ray_env
    )
    try:
        wait_for(lambda: checkpointed(runs), proc, what="a checkpoint")
        proc.popen.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130, proc.stderr
    finally:
        proc.kill_if_running()
    study = only_run(runs)
    assert "Traceback" not in proc.stderr and f"resume with: barkbench compare --resume {study}" in proc.stderr
    assert {row["name"] for row in results(study)["runs"]} == {"rnn-s0", "rnn-s1", "gpt-s0", "gpt-s1"}  # the report
    stopped = runs_by_name(study)
    assert {meta(run)["status"] for run in stopped.values()} <= {"interrupted", "completed"}
    # what each stopped run had done up to its checkpoint, timings included: training it again would change them
    kept = {name: [row for row in metrics(run) if row["step"] <= meta(run)["step"]] for name, run in stopped.items()}

    resumed = cli("compare", "--resume", study, "--launcher", "local", "--jobs", "1")  # either launcher resumes
    assert resumed.exit_code == 0, resumed.output
    assert all(row["status"] == "completed" for row in results(study)["runs"])
    assert {name: run for name, run in runs_by_name(study).items() if name in stopped} == stopped
    for name, run in stopped.items():
        rows = metrics(run)
        assert rows[: len(kept[name])] == kept[name]
        assert [row["step"] for row in rows] == sorted({row["step"] for row in rows})


def test_sigterm_after_ray_init_is_barkbench_s_request_to_stop_not_ray_s_exit(tmp_path, ray_env, monkeypatch):
    """ray.init sets a SIGTERM handler of its own in the driver (it exits at once); the launcher
    sets barkbench's after it, and puts the one it found back at the end."""
    monkeypatch.setenv("RAY_TMPDIR", ray_env["RAY_TMPDIR"])
    runs = tmp_path / "runs"

    def terminate_after_a_checkpoint():
        deadline = time.monotonic() + 60
        while not checkpointed(runs) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    def ignore(signum, frame):  # this test's own SIGTERM handler, should the signal come late
        pass

    previous = signal.signal(signal.SIGTERM, ignore)
    try:
        thread = threading.Thread(target=terminate_after_a_checkpoint)
        thread.start()
        result = cli("compare", "--config", SMOKE, "--runs-dir", runs, "--launcher", "ray", *LONG)
        thread.join()
        assert signal.getsignal(signal.SIGTERM) is ignore
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 143, result.output
    assert "interrupted; resume with: barkbench compare --resume" in result.stderr
    assert "interrupted" in {meta(run)["status"] for run in runs_by_name(only_run(runs)).values()}


# ---- two nodes: last in this module, which holds them to its end -------------------------------


@pytest.fixture(scope="module")
def two_nodes(ray_env, tmp_path_factory):
    """A head and a second node of 1 CPU each; the second cannot see the directory `hidden`,
    where the machine allows a test to hide one (None where it does not)."""
    root = tmp_path_factory.mktemp("two-nodes")
    hidden = root / "hidden"
    hidden.mkdir()
    hidden = hidden if can_hide(hidden) else None
    with cluster(ray_env, root, 1, 1, hidden=hidden) as address:
        yield {"address": address, "hidden": hidden}


def test_the_runs_of_a_study_land_on_both_nodes_of_a_two_node_cluster(tmp_path, ray_env, two_nodes):
    args = ["compare", "--config", SMOKE, "--runs-dir", tmp_path / "runs", "--launcher", "ray"]
    proc = Proc([*args, "--address", two_nodes["address"], *QUICK, "train.steps=50"], tmp_path, "two", ray_env)
    assert proc.wait() == 0, proc.stderr
    assert "training on Ray: 2 CPUs on 2 node(s)" in proc.stderr
    for name in ("rnn-s0", "rnn-s1", "gpt-s0", "gpt-s1"):  # the display, fed by the tasks' events
        # stderr is a file here, so the display writes plain lines: each run's last step, then its status
        assert re.search(rf"^{name}: step 50/50, ", proc.stderr, re.M), proc.stderr
        assert re.search(rf"^{name}: completed$", proc.stderr, re.M), proc.stderr
    study = only_run(tmp_path / "runs")
    assert [row["status"] for row in results(study)["runs"]] == ["completed"] * 4
    assert len({meta(run)["ray_node"] for run in runs_by_name(study).values()}) == 2


def test_a_node_that_cannot_see_the_study_directory_is_a_clear_error_before_any_run(tmp_path, ray_env, two_nodes):
    if two_nodes["hidden"] is None:
        pytest.skip("hiding a directory from a node needs `unshare --mount` and the right to mount (root)")
    runs = two_nodes["hidden"] / "runs"  # the driver writes the study there; the second node sees an empty tmpfs
    args = ["compare", "--config", SMOKE, "--runs-dir", runs, "--launcher", "ray", "--address", two_nodes["address"]]
    proc = Proc([*args, *QUICK], tmp_path, "hidden", ray_env)
    assert proc.wait() == 2, proc.stderr
    assert "cannot see the study directory" in proc.stderr and "Traceback" not in proc.stderr
    assert [path.name for path in only_run(runs).iterdir()] == ["study.yaml"]  # no run started


def test_a_ray_that_barkbench_starts_and_a_cluster_it_joins_here_talk_over_loopback(ray_env, two_nodes):
    """In a process of its own, so that Ray's token (which a process keeps once read) is this module's."""
    code = (
        "import sys, ray\nfrom barkbench.study.ray_cluster import connect\n"
        "for address in (None, sys.argv[1]):\n"
        "    connect(ray, address, cpus=1)\n"
        "    nodes = {n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']}\n"
        "    gcs = ray.get_runtime_context().gcs_address.rsplit(':', 1)[0]\n"
        "    print('seen:', address, sorted(nodes), ray.util.get_node_ip_address(), gcs)\n"
        "    ray.shutdown()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, two_nodes["address"]], env=ray_env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    seen = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("seen:")]
    # nodes, the driver and the GCS, for a Ray started for the command and for the cluster joined by address
    assert seen == [
        ["None", f"['{LOOPBACK}']", LOOPBACK, LOOPBACK],
        [two_nodes["address"], f"['{LOOPBACK}']", LOOPBACK, LOOPBACK],
    ]
