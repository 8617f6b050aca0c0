"""A study's findings, gathered from its run directories: one row per run, the tune value chosen
for each model and sweep cell on validation, and, on test, each model's figures and its accuracy
against the task's bucket (echo: distance; copy: source length) with the spread over seeds and
the seeds' own collapse points. report_file.py writes them out; sentences.py says what they show.

A *line* is what a picture draws as one line: one model entry at one value of every swept key
that does not set the bucket (a sweep of `task.min_gap,task.max_gap` is a sweep of the x-axis, so
its cells join into one line), its runs at the tune value chosen for each cell.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from barkbench import __version__
from barkbench.buckets import bucket_order
from barkbench.rundir import problems, read_json, readable, remedy, shown_status, write_json

THRESHOLD = 0.9  # the collapse point is the first bucket whose mean test accuracy falls below this
# The figures a line reports, on the test split: what nothing was chosen on.
FIGURES = [
    "test_loss",
    "test_excess_loss",
    "test_accuracy",
    "test_bark_accuracy",
    "test_stop_accuracy",
    "test_exact_match",
]
CONSTANTS = ["params", "state_bytes"]  # the same for every seed of a model


def write_findings(study: Path, force: bool = False) -> dict:
    """Gather the study's runs; write results.json, report.md, collapse.png, curves.png and, for a
    study that sweeps a capacity key, memory_map.png; return what the terminal shows. When they
    were written after the last change to anything they are made from, they are read back
    instead (unless forced): `report` on a finished study then needs neither the configs'
    validation nor matplotlib, and answers at once."""
    from barkbench.study import report_file, sentences

    findings = None if force else written_findings(study)
    if findings:
        rows, lines, tables = findings["runs"], findings["models"], report_file.terminal_tables(findings)
        return {"rows": rows, "lines": lines, "findings": findings, "tables": tables, "written": False}
    # Validating the configs takes pydantic, and drawing matplotlib: imported only when needed.
    from barkbench import plots
    from barkbench.study.plan import load_study
    from barkbench.tasks import task_of

    combos = load_study(study)
    task = task_of(combos[0]["config"].val_task)  # a study trains every model on the same task
    rows, trained = collect(study, combos, task)
    tuning = select(rows)
    lines = trace(rows, trained, task)
    protocol = protocol_of(combos, task)
    for line in lines:
        line["sentence"] = sentences.describe(line, task, protocol)
    findings = {
        "barkbench": __version__,  # what wrote them: another version gathers and draws them again
        "study": study.name,
        "task": combos[0]["config"].task.name,
        "threshold": THRESHOLD,
        "chance": task.chance,
        "bucket": task.buckets.name if task.buckets else None,
        "sample_figures": list(task.sample_figures),
        "protocol": protocol,
        "comparison": sentences.compare(lines, bucket_axis(lines)),
        "runs": rows,
        "models": lines,
        "tuning": tuning,
    }
    write_json(study / "results.json", findings)
    pictures = plots.study_pictures(study, findings, task, capacity_sweep(combos, task))
    report_file.write(study, findings, pictures, task)
    tables = report_file.terminal_tables(findings)
    return {"rows": rows, "lines": lines, "findings": findings, "tables": tables, "written": True}


def written_findings(study: Path) -> dict | None:
    """The findings in results.json if this version of barkbench wrote them, report.md and the
    pictures after the last change to what they are made from (study.yaml and its runs' config,
    meta, summary, metrics and checkpoints); None if they must be gathered again."""
    written = [study / name for name in ("results.json", "report.md", "collapse.png", "curves.png")]
    sources = [study / "study.yaml"] + [
        path
        for name in ("config.yaml", "meta.json", "summary.json", "metrics.jsonl", "checkpoints/*/*.safetensors")
        for path in study.glob(f"*/{name}")  # a damaged checkpoint makes its run `damaged`
    ]
    if not all(path.exists() for path in written + sources[:1]):
        return None
    if min(path.stat().st_mtime_ns for path in written) <= max(path.stat().st_mtime_ns for path in sources):
        return None
    try:
        findings = json.loads((study / "results.json").read_text())
    except json.JSONDecodeError:
        return None
    return findings if findings.get("barkbench") == __version__ else None


def collect(study: Path, combos: list[dict], task) -> tuple[list[dict], dict]:
    """One row per combination (where it ran, its status, its summary figures), and the buckets
    each combination's training data covered, by name."""
    from barkbench.study.plan import study_runs

    runs = study_runs(study)
    rows, trained = [], {}
    for combo in combos:
        run = runs.get(combo["name"])
        row = {
            "run": run.name if run else None,
            "name": combo["name"],
            "model": combo["config"].model.name,
            "label": combo["label"],
            "group": combo["group"],
            "seed": combo["seed"],
            "sweep": combo["sweep"],
            "tune": combo["tune"],
            "status": "not started",
        }
        if run is not None:
            meta = readable(run / "meta.json")
            row.update(status=shown_status(meta), params=meta.get("params"), state_bytes=meta.get("state_bytes"))
            if row["status"] in ("failed", "interrupted", "dead") and meta.get("message"):
                row["message"] = meta["message"]
            if damage := problems(run):  # its figures are left out until it is mended
                row.update(status="damaged", message=f"{'; '.join(damage)}; {remedy(run)}")
            elif row["status"] == "completed":
                summary = read_json(run / "summary.json")
                row.update({k: v for k, v in summary.items() if k not in ("name", "model", "seed")})
        rows.append(row)
        if task.buckets:
            trained[combo["name"]] = {task.buckets.label(v) for v in task.buckets.values(combo["config"].task)}
    return rows, trained


def spread(values: list[float]) -> dict | None:
    """Mean and standard deviation over seeds (0 for a single seed), or None for no values."""
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def key_of(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def short(settings: dict) -> list[str]:
    """Dotted-key settings as a reader sees them in names and legends: ["lr=0.003", ...]."""
    return [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in settings.items()]


def select(rows: list[dict]) -> list[dict]:
    """For each model entry and sweep cell, the tune value with the best mean validation accuracy
    over seeds (ties: the lower validation loss): its rows are marked `selected`. Only validation
    figures take part; each candidate's test accuracy is kept to show how much the choice mattered.
    Returns one entry per cell with every candidate's scores."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["label"], key_of(row["sweep"])), []).append(row)
    tuning = []
    for members in cells.values():
        candidates: dict[str, list[dict]] = {}
        for row in members:
            candidates.setdefault(key_of(row["tune"]), []).append(row)
        scored = []
        for runs in candidates.values():
            done = [r for r in runs if r["status"] == "completed"]
            scores = {k: spread([r[k] for r in done]) for k in ("val_accuracy", "val_loss", "test_accuracy")}
            scored.append({"tune": runs[0]["tune"], "runs": len(runs), "completed": len(done), **scores})
        ranked = [c for c in scored if c["val_accuracy"] is not None]
        best = max(ranked, key=lambda c: (c["val_accuracy"]["mean"], -c["val_loss"]["mean"])) if ranked else scored[0]
        for candidate in scored:
            candidate["selected"] = candidate is best
        for row in members:
            row["selected"] = key_of(row["tune"]) == key_of(best["tune"])
        tuning.append({"label": members[0]["label"], "sweep": members[0]["sweep"], "candidates": scored})
    return tuning


def bucket_sweep(key: str, task) -> bool:
    """Whether a sweep key only moves the x-axis: every key it sets is one of the task's bucket keys."""
    return task.buckets is not None and all(
        k.startswith("task.") and k.split(".", 1)[1] in task.buckets.keys for k in key.split(",")
    )


def trace(rows: list[dict], trained: dict, task) -> list[dict]:
    """The lines: per model entry and value of the other swept keys, over the selected runs, every
    figure as mean ± std over seeds (a seed's figure being its mean over the line's cells), the
    accuracy and exact match by bucket, the collapse point of the mean and of each seed."""
    name = task.buckets.name if task.buckets else None
    members: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["selected"]:
            kept = {k: v for k, v in row["sweep"].items() if not bucket_sweep(k, task)}
            members.setdefault((row["label"], key_of(kept)), []).append(row)
    lines = []
    for (label, kept), runs in members.items():
        done = [r for r in runs if r["status"] == "completed"]
        seeds = {}
        for r in done:
            seeds.setdefault(r["seed"], []).append(r)
        sweep = json.loads(kept)
        line = {
            "name": " ".join([label, *short(sweep)]),
            "label": label,
            "model": runs[0]["model"],
            "sweep": sweep,
            "tune": list({key_of(r["tune"]): r["tune"] for r in runs if r["tune"]}.values()),
            "runs": len(runs),
            "completed": len(done),
            "seeds": sorted(seeds),
        }
        for k in FIGURES + CONSTANTS + list(task.sample_figures):
            line[k] = spread([statistics.fmean(r[k] for r in rs) for rs in seeds.values() if all(k in r for r in rs)])
        if name:
            curves = {s: merged(rs, f"test_accuracy_by_{name}") for s, rs in seeds.items()}
            line["by_bucket"] = over_seeds(curves)
            line["exact_by_bucket"] = over_seeds(
                {s: merged(rs, f"test_exact_match_by_{name}") for s, rs in seeds.items()}
            )
            line["collapse"] = collapse({b: s["mean"] for b, s in line["by_bucket"].items()})
            line["seed_collapse"] = {str(s): collapse(curve) for s, curve in curves.items()}
            line["trained"] = sorted(set().union(*(trained[r["name"]] for r in runs)), key=bucket_order)
        lines.append(line)
    return lines


def merged(runs: list[dict], key: str) -> dict[str, float]:
    """One seed's {bucket: value} over the line's cells (a bucket two cells measure: their mean)."""
    values: dict[str, list[float]] = {}
    for run in runs:
        for bucket, value in run.get(key, {}).items():
            values.setdefault(bucket, []).append(value)
    return {b: statistics.fmean(values[b]) for b in sorted(values, key=bucket_order)}


def over_seeds(curves: dict) -> dict[str, dict]:
    buckets = sorted({b for curve in curves.values() for b in curve}, key=bucket_order)
    return {b: spread([curve[b] for curve in curves.values() if b in curve]) for b in buckets}


def collapse(curve: dict[str, float]) -> str | None:
    """The first bucket whose accuracy falls below THRESHOLD, or None if none does."""
    return next((b for b, accuracy in curve.items() if accuracy < THRESHOLD), None)


def bucket_axis(lines: list[dict]) -> list[str]:
    """Every bucket any line measured, in order: the x-axis shared by pictures and tables."""
    return sorted({b for line in lines for b in line.get("by_bucket", {})}, key=bucket_order)


def protocol_of(combos: list[dict], task) -> dict | None:
    """How the study's runs met their distances: all trained and tested on one mixed range
    (`mix`), each at one fixed value (`fixed`), or tested beyond what they trained on (`beyond`)."""
    if task.buckets is None:
        return None
    trained = [task.buckets.values(c["config"].task) for c in combos]
    tested = [task.buckets.values(c["config"].val_task) for c in combos]
    if tested != trained:
        kind = "beyond"
    elif all(len(values) == 1 for values in trained):
        kind = "fixed"
    else:
        kind = "mix"
    return {"kind": kind, "trained": extent(trained), "tested": extent(tested)}


def extent(ranges: list) -> list:
    """[lowest, highest] over ranges that are each in order."""
    return [min(r[0] for r in ranges), max(r[-1] for r in ranges)]


def capacity_sweep(combos: list[dict], task) -> str | None:
    """The swept key that sets how much there is to remember (a task's message_length, a model's
    hidden_size), when it is the only swept key besides the bucket's: the rows of memory_map.png."""
    from barkbench.models import MODELS

    sweep = combos[0]["sweep"]
    capacity = {f"task.{k}" for k in task.capacity_keys} | {
        f"model.{k}" for f in MODELS.values() for k in f.capacity_keys
    }
    found = [k for k in sweep if k in capacity]
    rest = [k for k in sweep if k not in capacity and not bucket_sweep(k, task)]
    return found[0] if len(found) == 1 and not rest and task.buckets else None
