"""A study's outputs, written by one module: its rows read from the run directories, the findings
made from them (findings.py), the sentences that say what they show (sentences.py), then
results.json, the pictures (plots.py) and report.md (report_file.py). When those were written
after the last change to anything they are made from, they are read back instead."""

from __future__ import annotations

import json
from pathlib import Path

from barkbench import __version__
from barkbench.rundir import problems, read_json, readable, remedy, shown_status, write_json
from barkbench.study.findings import THRESHOLD, bucket_axis, capacity_sweep, frontier, protocol_of, select, trace


def write_outputs(study: Path, force: bool = False) -> dict:
    """Gather the study's runs; write results.json, report.md, collapse.png, curves.png and, for a
    study that sweeps a capacity key, memory_map.png; return what the terminal shows. When they
    were written after the last change to anything they are made from, they are read back
    instead (unless forced): `report` on a finished study then needs neither the configs'
    validation nor matplotlib, and answers at once."""
    from barkbench.study import report_file

    findings = None if force else written_outputs(study)
    if findings:
        rows, lines, tables = findings["runs"], findings["models"], report_file.terminal_tables(findings)
        return {"rows": rows, "lines": lines, "findings": findings, "tables": tables, "written": False}
    # Validating the configs takes pydantic, and drawing matplotlib: imported only when needed.
    from barkbench import plots
    from barkbench.study import sentences
    from barkbench.study.plan import load_study
    from barkbench.tasks import task_of

    combos = load_study(study)
    task_cfg = combos[0]["config"].val_task  # a study trains every model on the same task
    task = task_of(task_cfg)
    chance = task.chance(task_cfg)
    rows, trained = collect(study, combos, task)
    tuning = select(rows)
    lines = trace(rows, trained, task)
    protocol = protocol_of(combos, task)
    for line in lines:
        line["sentence"] = sentences.describe(line, task, protocol, chance)
    findings = {
        "barkbench": __version__,  # what wrote them: another version gathers and draws them again
        "study": study.name,
        "task": combos[0]["config"].task.name,
        "threshold": THRESHOLD,
        "chance": chance,
        "content": task.content,  # what the answer's content is: the tables' "acc (barks)"
        "unit": task.unit,  # what exact match by bucket counts one of
        "given": task.given,  # what the answers' given tokens are, if they hold any
        "bucket": task.buckets.name if task.buckets else None,
        "sample_figures": list(task.sample_figures),
        "stop_at": sorted({c["config"].train.stop_at for c in combos} - {None}),  # train.stop_at, if set
        "protocol": protocol,
        "comparison": sentences.compare(lines, bucket_axis(lines)),
        "runs": rows,
        "models": lines,
        "tuning": tuning,
    }
    points = frontier(lines)
    findings |= {"frontier": points, "frontier_said": sentences.frontier_said(points, task.content) if points else None}
    write_json(study / "results.json", findings)
    pictures = plots.study_pictures(study, findings, task, capacity_sweep(combos, task))
    report_file.write(study, findings, pictures, sentences.protocol_text(protocol, task) if protocol else "")
    tables = report_file.terminal_tables(findings)
    return {"rows": rows, "lines": lines, "findings": findings, "tables": tables, "written": True}


def written_outputs(study: Path) -> dict | None:
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
