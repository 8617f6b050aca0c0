"""`make bench-studies AGAINST=COMMIT [STUDY=long_context] [ROUNDS=1] [OVERRIDES="..."]`: a shipped
study's wall time at this checkout against another commit, on this machine.

The other commit is checked out in a git worktree of its own (removed at the end) and run with
this environment's Python and packages, its own barkbench first on the path. Each round runs the
whole `barkbench compare --config STUDY` once on each side, the order alternating from round to
round, so that drift in the machine's speed hits both alike; nothing else should run meanwhile.
It prints each side's wall times and their ratio, and each line's collapse point on both sides
(the conclusions must not move), and writes runs/bench-studies.json.

    python benchmarks/bench_studies.py --against 11e6f65 --study long_context
    python benchmarks/bench_studies.py --against HEAD~3 --study smoke --rounds 3
    python benchmarks/bench_studies.py --against 11e6f65 --study long_context train.steps=500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table

from barkbench.display import out

HERE = Path(__file__).resolve().parent.parent  # this checkout
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def git(*args: str, cwd: Path = HERE) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def run_study(root: Path, study: str, runs_dir: Path, overrides: list[str]) -> tuple[float, dict]:
    """The wall time of one whole `barkbench compare` with the barkbench at root, and its results.json."""
    args = [sys.executable, "-m", "barkbench", "compare", "--config", study, "--runs-dir", str(runs_dir), *overrides]
    began = time.perf_counter()
    done = subprocess.run(args, cwd=runs_dir.parent, env={**ENV, "PYTHONPATH": str(root)}, capture_output=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"barkbench compare at {root} failed:\n{done.stderr.decode()[-3000:]}")
    (directory,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return seconds, json.loads((directory / "results.json").read_text())


def collapse_points(results: dict) -> dict[str, str]:
    """Each line's collapse point and its seeds', by line name: "never" where it holds to the last
    bucket, "did not learn" where it never reached the threshold (results.json says so since c8807db;
    before it, such a line's collapse point was its first bucket)."""

    def said(point, learned: bool) -> str:
        return point or "never" if learned else "did not learn"

    points = {}
    for line in results["models"]:
        if "seed_collapse" in line:
            learned = line.get("seed_learned", {})
            seeds = sorted({said(p, learned.get(s, True)) for s, p in line["seed_collapse"].items()})
            points[line["name"]] = f"{said(line['collapse'], line.get('learned', True))} (seeds: {', '.join(seeds)})"
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the commit to compare with, e.g. 11e6f65 or HEAD~3")
    parser.add_argument("--study", default="long_context", help="a shipped compare config's name")
    parser.add_argument("--rounds", type=int, default=1, help="runs of the study on each side")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE overrides for both sides, e.g. train.steps=500")
    options = parser.parse_args()

    here, there = git("rev-parse", "--short", "HEAD"), git("rev-parse", "--short", options.against)
    dirty = " (with uncommitted changes)" * bool(git("status", "--porcelain", "--untracked-files=no"))
    times: dict[str, list[float]] = {"this": [], "against": []}
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-studies-") as tmp:
        worktree = Path(tmp) / "against"
        git("worktree", "add", "--detach", str(worktree), options.against)
        try:
            roots = {"this": HERE, "against": worktree}
            for i in range(options.rounds):
                order = ["against", "this"] if i % 2 == 0 else ["this", "against"]
                for side in order:
                    runs = Path(tmp) / f"{side}-{i}" / "runs"
                    runs.mkdir(parents=True)
                    out.print(f"round {i + 1}: {options.study} at {side} ...", highlight=False)
                    seconds, results[side] = run_study(roots[side], options.study, runs, options.overrides)
                    times[side].append(seconds)
                    out.print(f"  {seconds:.0f} s", highlight=False)
        finally:
            git("worktree", "remove", "--force", str(worktree))
    this, against = (statistics.median(times[side]) for side in ("this", "against"))
    table = Table(
        title=f"barkbench: {' '.join([options.study, *options.overrides])}, the whole study, median of {options.rounds}"
    )
    for col in ("commit", "wall s", "rounds", "ratio to the other commit"):
        table.add_column(col, justify="right")
    table.add_row(f"{there} (against)", f"{against:.0f}", " ".join(f"{t:.0f}" for t in times["against"]), "1.00")
    table.add_row(
        f"{here}{dirty} (this)", f"{this:.0f}", " ".join(f"{t:.0f}" for t in times["this"]), f"{this / against:.2f}"
    )
    points = {side: collapse_points(results[side]) for side in results}
    lines = Table(title="collapse point of each line: the first bucket below the threshold")
    for col in ("line", there, here):
        lines.add_column(col)
    for name in dict.fromkeys([*points["against"], *points["this"]]):
        lines.add_row(name, points["against"].get(name, "-"), points["this"].get(name, "-"))
    out.print(table)
    out.print(lines)
    record = {
        "study": options.study,
        "overrides": options.overrides,
        "this": {"commit": here + dirty, "seconds": times["this"]},
        "against": {"commit": there, "seconds": times["against"]},
        "ratio": this / against,
        "collapse": points,
    }
    path = HERE / "runs" / "bench-studies.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    out.print(f"wrote {path}", highlight=False)


if __name__ == "__main__":
    main()
