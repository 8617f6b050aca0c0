"""`make bench-ray`: what the Ray launcher costs, against the local launcher, on this machine.

The same 8-run study (the smoke study's rnn and gpt with 4 seeds, cut to 300 steps) is run
as a whole command, `barkbench compare`, in a fresh process: once with `--launcher local --jobs 2`
and once with `--launcher ray` on a Ray of 2 CPUs started by the command (2 runs at a time
either way, one thread each). The wall times include everything a user waits for: starting
Python and torch, starting Ray, training, the report. Their difference over the 8 runs is Ray's
overhead per run. Rounds alternate the launchers so that drift in the machine's speed hits both
alike; the median is kept. Results go to the terminal and to runs/bench-launchers.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from rich.table import Table

from barkbench.display import out
from barkbench.locate import SHIPPED

SMOKE = SHIPPED / "compare" / "smoke.yaml"
RUNS, ROUNDS, CORES = 8, 3, 2
OVERRIDES = ["train.steps=300", "task.train_size=1000"]
LAUNCHERS = {"local": ["--launcher", "local", "--jobs", "2"], "ray": ["--launcher", "ray"]}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def two_cores() -> None:
    """Both commands on the same 2 cores, whatever the machine: the Ray they start counts 2 CPUs."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:CORES])


def wall_seconds(study: Path, launcher: str, runs_dir: Path) -> float:
    """The wall time of one whole `barkbench compare` of the study with this launcher."""
    args = [sys.executable, "-m", "barkbench", "compare", "--config", str(study), "--runs-dir", str(runs_dir)]
    began = time.perf_counter()
    done = subprocess.run([*args, *LAUNCHERS[launcher], *OVERRIDES], env=ENV, capture_output=True, preexec_fn=two_cores)
    if done.returncode != 0:
        raise SystemExit(f"barkbench compare --launcher {launcher} failed:\n{done.stderr.decode()}")
    return time.perf_counter() - began


def main() -> None:
    times: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study.yaml"
        study.write_text(yaml.safe_dump({**yaml.safe_load(SMOKE.read_text()), "seeds": [0, 1, 2, 3]}))
        for i in range(ROUNDS):
            for name in LAUNCHERS:
                times[name].append(wall_seconds(study, name, Path(tmp) / f"{name}-{i}"))
    local, ray = (statistics.median(times[name]) for name in LAUNCHERS)
    results = {
        "runs": RUNS,
        "study": f"{SMOKE.name} with seeds [0, 1, 2, 3]; {' '.join(OVERRIDES)}",
        "cores": CORES,
        "rounds": times,
        "local_seconds": local,
        "ray_seconds": ray,
        "ratio": ray / local,
        "overhead_per_run_seconds": (ray - local) / RUNS,
    }
    table = Table(title=f"barkbench: one {RUNS}-run study on {CORES} cores, 2 runs at a time, median of {ROUNDS}")
    for col in ("launcher", "wall s", "rounds", "ratio", "overhead s/run"):
        table.add_column(col, justify="right")
    table.add_row("local --jobs 2", f"{local:.1f}", " ".join(f"{t:.1f}" for t in times["local"]), "1.00", "-")
    table.add_row(
        f"ray ({CORES} CPUs)",
        f"{ray:.1f}",
        " ".join(f"{t:.1f}" for t in times["ray"]),
        f"{ray / local:.2f}",
        f"{(ray - local) / RUNS:.2f}",
    )
    out.print(table)
    path = Path("runs") / "bench-launchers.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    out.print(f"wrote {path}", highlight=False)


if __name__ == "__main__":
    main()
