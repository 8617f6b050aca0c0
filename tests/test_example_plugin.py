"""The example plugin (examples/barkbench-window) from a plain install: barkbench and the plugin
built from their sources and installed with pip, not editable, into a fresh virtual environment;
there, the plugin's own tests, then every command with it: validate, train, generate, inspect,
runs, compare against a built-in at --jobs 2, and compare at --launcher ray, whose study must
hold the same figures. About a minute and a half on 2 cores, most of it starting processes that
import torch.

The fresh environment borrows this one's packages (torch, Ray, pydantic, pytest, ...): a .pth
file puts this environment's site-packages at the end of its path, so nothing is downloaded and
Ray's 240 MB are not installed twice. barkbench and the plugin are its own, installed with
`pip --no-index --no-build-isolation` and first on its path; a .pth line adds a directory to the
path but reads no .pth file in it, so this environment's editable barkbench is not seen there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers import ENV, result_figures

from barkbench.study.ray_cluster import LOOPBACK

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "examples" / "barkbench-window"
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".pytest_cache")

# Two windows (so two state sizes) and a built-in, on a task of a few short sequences.
BASE = {
    "task": {"name": "echo", "message_length": 2, "min_gap": 0, "max_gap": 6, "train_size": 64, "val_size": 32},
    "model": {"embedding_dim": 8, "heads": 2, "layers": 2, "context_length": 16},
    "train": {"steps": 6, "batch_size": 8, "eval_every": 3, "eval_batch_size": 32},
    "sample": {"num_samples": 2, "max_new_tokens": 4, "temperature": 0},
}
STUDY = {
    "name": "windows",
    "base": BASE,
    "models": [{"name": "window", "window": 2}, {"name": "window", "window": 4}, {"name": "gpt"}],
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A fresh environment with barkbench and the plugin installed from copies of their sources:
    (its python, the directory to run commands in, the environment variables)."""
    tmp = tmp_path_factory.mktemp("plain")
    source = tmp / "source"
    shutil.copytree(ROOT / "barkbench", source / "barkbench", ignore=SKIP)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PLUGIN, tmp / "barkbench-window", ignore=SKIP)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp / "env"], check=True)
    python = tmp / "env" / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    (Path(site.stdout.strip()) / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [python, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation"]
    subprocess.run([*pip, source, tmp / "barkbench-window"], check=True, env=ENV, timeout=300)
    work = tmp / "work"
    work.mkdir()
    (work / "study.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    (work / "window.yaml").write_text(yaml.safe_dump({**BASE, "model": {**BASE["model"], "name": "window"}}))
    ray_tmp = tempfile.mkdtemp(prefix="bbplug-", dir="/tmp")  # short: Ray's socket paths live there
    yield python, work, {**ENV, "RAY_TMPDIR": ray_tmp}
    shutil.rmtree(ray_tmp, ignore_errors=True)


def barkbench(env, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    python, work, variables = env
    command = [python.with_name("barkbench"), *map(str, args)]
    return subprocess.run(command, cwd=work, env=variables, capture_output=True, text=True, timeout=timeout)


def test_barkbench_and_the_plugin_are_the_fresh_environments_own(env):
    python, work, variables = env
    code = "import barkbench, barkbench_window; print(barkbench.__file__); print(barkbench_window.__file__)"
    done = subprocess.run([python, "-c", code], cwd=work, env=variables, capture_output=True, text=True, check=True)
    for path in done.stdout.split():
        assert path.startswith(str(python.parent.parent)) and "site-packages" in path, path


def imported(env, *args) -> list[str]:
    """Which of the plugin, torch and pydantic `barkbench ARGS` imports in the fresh environment."""
    python, work, variables = env
    code = (
        "import sys\nfrom barkbench.cli import main\nsys.argv = ['barkbench', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
        "print('imported:', *[m for m in ('barkbench_window', 'torch', 'pydantic') if m in sys.modules])"
    )
    done = subprocess.run([python, "-c", code, *args], cwd=work, env=variables, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.rsplit("imported:", 1)[1].split()


def test_the_plugin_costs_help_nothing_and_validating_a_built_in_config_no_torch(env):
    assert imported(env, "--help") == []
    assert imported(env, "validate", "--config", "baby") == ["barkbench_window", "pydantic"]  # its config: no torch


def test_the_plugins_own_tests_pass_against_the_installed_package(env):
    python, work, variables = env
    tests = work.parent / "barkbench-window" / "tests"
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests],
        cwd=work,
        env=variables,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_validate_train_generate_inspect_and_runs_with_the_plugin(env):
    checked = barkbench(env, "validate", "--config", "echo_gpt", "model.name=window", "model.window=32")
    assert checked.returncode == 0, checked.stderr
    model = yaml.safe_load(checked.stdout)["model"]
    assert model["name"] == "window" and model["window"] == 32
    refused = barkbench(env, "validate", "--config", "window.yaml", "model.heads=3")
    assert refused.returncode == 2
    assert refused.stderr == (
        "error: override 'model.heads=3': model.heads (3) does not divide model.embedding_dim (8); "
        "give heads that divide it\n"
    )

    trained = barkbench(env, "train", "--config", "window.yaml")
    assert trained.returncode == 0, trained.stderr
    (run,) = (env[1] / "runs").glob("window-echo-*")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "window" and summary["state_bytes"] == 2 * 2 * 16 * 8 * 4  # default window 16
    assert summary["sequence_state_bytes"] == 2 * 2 * summary["sequence_length"] * 8 * 4  # shorter than the window

    generated = barkbench(env, "generate", run, "-n", "2", "--temperature", "0")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.count("User:") == 2

    drawn = barkbench(env, "inspect", run, "--out", env[1] / "pictures")
    assert drawn.returncode == 0, drawn.stderr
    assert {p.name for p in (env[1] / "pictures").iterdir()} == {
        "attention-layer1.png",
        "attention-layer2.png",
        "gradients.png",
    }

    listed = barkbench(env, "runs")
    assert listed.returncode == 0 and "window" in listed.stdout


@pytest.mark.skipif(LOOPBACK is None, reason="a Ray on loopback needs Linux's 127.0.0.0/8")
def test_compare_with_the_plugin_at_jobs_2_and_on_ray_holds_the_same_figures(env):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'barkbench[ray]' (make install does)")
    local = barkbench(env, "compare", "--config", "study.yaml", "--jobs", "2")
    assert local.returncode == 0, local.stderr
    assert "training 2 at a time" in local.stderr
    ray = barkbench(env, "compare", "--config", "study.yaml", "--launcher", "ray", "--runs-dir", "ray-runs")
    assert ray.returncode == 0, ray.stderr
    (by_local,), (by_ray,) = (env[1] / "runs").glob("windows-*"), (env[1] / "ray-runs").glob("windows-*")
    rows = {r["name"]: r for r in json.loads((by_local / "results.json").read_text())["runs"]}
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(
        ["window-window2-s0", "window-window4-s0", "gpt-s0"], "completed"
    )
    assert rows["window-window2-s0"]["state_bytes"] == 2 * 2 * 2 * 8 * 4
    assert rows["window-window4-s0"]["state_bytes"] == 2 * 2 * 4 * 8 * 4
    assert result_figures(by_ray) == result_figures(by_local)  # the launcher changes nothing in the figures
