"""`make studies [STUDIES="long_context memory_map"]`: run shipped studies as shipped, one after
another, and keep what each shows in studies/<name>/ (report.md, results.json and its pictures,
plus timing.json: the wall time and the machine), which the README and the configs' headers quote
and tests/test_shipped_studies.py checks. Nothing else should run meanwhile: the wall times are
the ones the headers give.

    python benchmarks/run_studies.py                       # every shipped compare config but smoke
    python benchmarks/run_studies.py long_context memory_map
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table

from barkbench.display import out
from barkbench.locate import SHIPPED

HERE = Path(__file__).resolve().parent.parent
KEPT = ("report.md", "results.json", "collapse.png", "memory_map.png", "frontier.png", "curves.png")


def run(name: str, tmp: Path) -> dict:
    """Run one shipped study in a fresh process; keep its outputs in studies/<name>/."""
    runs = tmp / name
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "barkbench", "compare", "--config", name, "--runs-dir", str(runs)],
        cwd=tmp,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"barkbench compare --config {name} failed:\n{done.stderr[-3000:]}")
    (study,) = [p for p in runs.iterdir() if p.is_dir()]
    kept = HERE / "studies" / name
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    for file in KEPT:
        if (study / file).exists():
            shutil.copy2(study / file, kept / file)
    timing = {"study": name, "seconds": round(seconds), "cores": os.cpu_count(), "machine": platform.machine()}
    timing["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    ).stdout.strip()
    (kept / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    return timing


def main() -> None:
    names = sys.argv[1:] or [p.stem for p in sorted((SHIPPED / "compare").glob("*.yaml")) if p.stem != "smoke"]
    table = Table(title="barkbench: shipped studies as shipped, one after another")
    for col in ("study", "wall", "minutes"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="studies-") as tmp:
        for name in names:
            out.print(f"{name} ...", highlight=False)
            timing = run(name, Path(tmp))
            out.print(f"  {timing['seconds']} s", highlight=False)
            table.add_row(name, f"{timing['seconds']} s", f"{timing['seconds'] / 60:.1f}")
    out.print(table)


if __name__ == "__main__":
    main()
