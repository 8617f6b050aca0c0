"""A study's findings: results.json, report.md and collapse.png, gathered from its run directories
(the report file; the terminal shows the same tables through barkbench/display.py).

One row per run; one group per model (and sweep value) with every figure as mean ± spread over
seeds; the collapse point (the first distance bucket whose mean accuracy falls below THRESHOLD);
and a sentence per model that says what its numbers show.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from barkbench.rundir import read_json, shown_status, write_atomic, write_json
from barkbench.study.plan import load_study, study_runs
from barkbench.tasks import task_of

THRESHOLD = 0.9  # the collapse point is the first distance bucket whose mean accuracy falls below this
SUMMARY_FIGURES = ["params", "state_bytes", "val_loss", "excess_loss", "val_accuracy"]


def write_findings(study: Path) -> dict:
    """Gather the study's runs, write results.json, report.md and collapse.png; return the rows,
    the per-model groups and the tables (title, headers, cells) for the terminal."""
    from barkbench import plots  # matplotlib takes a second to import; only the commands that draw need it

    combos = load_study(study)
    task = task_of(combos[0]["config"].val_task)  # a study trains every model on the same task
    rows = collect(study, combos)
    groups = aggregate(rows, combos, task.chance, list(task.sample_figures))
    headers, cells = study_table(groups, list(task.sample_figures))
    write_json(
        study / "results.json",
        {"study": study.name, "threshold": THRESHOLD, "chance": task.chance, "runs": rows, "models": groups},
    )
    if task.buckets:
        plots.accuracy_by_bucket(groups, study / "collapse.png", study.name, task.buckets.axis, THRESHOLD, task.chance)
    elif task.sample_figures:
        title = f"{study.name}: samples after training"
        plots.grouped_bars(groups, task.sample_figures, study / "collapse.png", title, "share")
    else:
        names = {"val_accuracy": "val accuracy", "excess_loss": "excess loss (nats)"}
        plots.grouped_bars(groups, names, study / "collapse.png", f"{study.name}: final figures", "value")
    write_atomic(study / "report.md", markdown_report(study, rows, groups, headers, cells, task.chance))
    return {"rows": rows, "groups": groups, "tables": terminal_tables(study.name, headers, cells, groups)}


def collect(study: Path, combos: list[dict]) -> list[dict]:
    """One row per combination: where it ran, its status, and its summary figures."""
    runs = study_runs(study)
    rows = []
    for combo in combos:
        run = runs.get(combo["name"])
        row = {
            "run": run.name if run else None,
            "name": combo["name"],
            "model": combo["config"].model.name,
            "label": combo["label"],
            "seed": combo["seed"],
            "sweep": combo["sweep"],
            "status": "not started",
        }
        if run is not None:
            meta = read_json(run / "meta.json") if (run / "meta.json").exists() else {}
            row.update(status=shown_status(meta), params=meta.get("params"), state_bytes=meta.get("state_bytes"))
            if row["status"] in ("failed", "interrupted", "dead") and meta.get("message"):
                row["message"] = meta["message"]
            if row["status"] == "completed":
                summary = read_json(run / "summary.json")
                row.update({k: v for k, v in summary.items() if k not in ("name", "model", "seed")})
        rows.append(row)
    return rows


def spread(values: list[float]) -> dict | None:
    """Mean and standard deviation over seeds (0 for a single seed), or None for no values."""
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def aggregate(rows: list[dict], combos: list[dict], chance: float, sample_figures: list[str]) -> list[dict]:
    """One group per model entry and sweep value (in the study's order), its figures over seeds."""
    groups = []
    for name in dict.fromkeys(c["group"] for c in combos):
        members = [r for r, c in zip(rows, combos) if c["group"] == name]
        done = [r for r in members if r["status"] == "completed"]
        buckets = dict.fromkeys(b for r in done for b in r.get("accuracy_by_distance", {}))
        group = {
            "name": name,
            "label": members[0]["label"],
            "model": members[0]["model"],
            "sweep": members[0]["sweep"],
            "runs": len(members),
            "completed": len(done),
            **{k: spread([r[k] for r in done if r.get(k) is not None]) for k in SUMMARY_FIGURES},
            "accuracy_by_distance": {
                b: spread([r["accuracy_by_distance"][b] for r in done if b in r["accuracy_by_distance"]])
                for b in sorted(buckets, key=lambda label: int(label.split("-")[0]))
            },
        }
        for key in sample_figures:
            if any(key in r for r in done):
                group[key] = spread([r[key] for r in done if key in r])
        group["collapse"] = next((b for b, s in group["accuracy_by_distance"].items() if s["mean"] < THRESHOLD), None)
        group["sentence"] = describe(group, chance)
        groups.append(group)
    return groups


def describe(g: dict, chance: float) -> str:
    """One sentence that says what a group's numbers show."""
    name = g["name"]
    if not g["completed"]:
        return f"{name}: none of its {g['runs']} runs completed, so there are no figures yet."
    acc = {b: s["mean"] for b, s in g["accuracy_by_distance"].items()}
    if acc:
        buckets, collapse = list(acc), g["collapse"]
        first, last, low, high = buckets[0], buckets[-1], min(acc.values()), max(acc.values())
        near = f", near chance ({chance:.2f})"
        if collapse is None:
            text = (
                f"{name} holds {low:.2f} accuracy{' or more' * (low < 0.995)} in every distance bucket, out to {last}"
            )
        elif collapse == first and high - low <= 0.05:  # a flat line: nothing learned that distance takes away
            span = f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f} to {high:.2f}"
            text = (
                f"{name} is at {span} accuracy at every distance from {first} to {last}{near * (high < chance + 0.05)}; "
                f"it is below {THRESHOLD} at the shortest distances already and no worse at the longest"
            )
        else:
            if collapse == first:
                text = f"{name} is below {THRESHOLD} accuracy already at the shortest distances ({first}: {acc[first]:.2f})"
            else:
                held = buckets[: buckets.index(collapse)]
                text = (
                    f"{name} holds {min(acc[b] for b in held):.2f} accuracy up to distance {held[-1].split('-')[1]} "
                    f"and falls below {THRESHOLD} at {collapse} ({acc[collapse]:.2f})"
                )
            text += f"; at {last} it is at {acc[last]:.2f}" if last != collapse else ""
            text += near * (acc[last] < chance + 0.05)
        worst = max(s["std"] for s in g["accuracy_by_distance"].values())
        if worst >= 0.1:
            text += f"; its seeds disagree by up to ±{worst:.2f}"
    elif "stop_rate" in g:
        text = (
            f"{name} ends {g['stop_rate']['mean']:.0%} of its samples inside the trained length range and keeps "
            f"the cycle in {g['cycle_adherence']['mean']:.0%} of its barks, {g['excess_loss']['mean']:.3f} nats "
            "above the loss floor"
        )
    else:
        text = (
            f"{name} reaches val loss {g['val_loss']['mean']:.3f}, {g['excess_loss']['mean']:.3f} nats above "
            f"the floor, and val accuracy {g['val_accuracy']['mean']:.2f}"
        )
    if g["completed"] < g["runs"]:
        text += f" ({g['runs'] - g['completed']} of its {g['runs']} runs did not complete; see the runs below)"
    return text + "."


def pm(s: dict | None, digits: int) -> str:
    """mean ± std, or the mean alone when the seeds agree exactly (or there is one)."""
    if s is None:
        return "-"
    return f"{s['mean']:.{digits}f}" + (f" ± {s['std']:.{digits}f}" if s["std"] else "")


def study_table(groups: list[dict], sample_figures: list[str]) -> tuple[list[str], list[list[str]]]:
    """The report's table: one row per group, figures as mean ± std over seeds."""
    buckets = list(dict.fromkeys(b for g in groups for b in g["accuracy_by_distance"]))
    cycle = [k for k in sample_figures if any(k in g for g in groups)]
    headers = ["model", "runs", "params", "state bytes", "val loss", "excess loss", "val acc"]
    headers += buckets + [k.replace("_", " ") for k in cycle] + (["collapse"] if buckets else [])
    cells = []
    for g in groups:
        row = [g["name"], f"{g['completed']}/{g['runs']}"]
        row += [f"{g[k]['mean']:,.0f}" if g[k] else "-" for k in ("params", "state_bytes")]
        row += [pm(g["val_loss"], 3), pm(g["excess_loss"], 3), pm(g["val_accuracy"], 3)]
        row += [pm(g["accuracy_by_distance"].get(b), 2) for b in buckets]
        row += [pm(g.get(k), 2) for k in cycle]
        if buckets:
            row.append("-" if not g["completed"] else g["collapse"] or "none")
        cells.append(row)
    return headers, cells


def terminal_tables(title: str, headers: list[str], cells: list[list[str]], groups: list[dict]) -> list[tuple]:
    """The table as (title, headers, cells) pieces that fit a terminal: the figures, then the
    accuracy by distance beside the collapse point."""
    buckets = set(b for g in groups for b in g["accuracy_by_distance"])
    if not buckets:
        return [(title, headers, cells)]
    figures = [i for i, h in enumerate(headers) if h not in buckets and h != "collapse"]
    distance = [0] + [i for i, h in enumerate(headers) if h in buckets or h == "collapse"]
    return [
        (title, [headers[i] for i in figures], [[row[i] for i in figures] for row in cells]),
        ("accuracy by distance", [headers[i] for i in distance], [[row[i] for i in distance] for row in cells]),
    ]


def markdown_table(headers: list[str], cells: list[list[str]], left: int = 1) -> str:
    """A table of text cells in markdown: the first `left` columns to the left, the figures to the right."""
    align = [":---" if i < left else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def markdown_report(study: Path, rows: list[dict], groups: list[dict], headers, cells, chance: float) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"# {study.name}",
        "",
        f"{len(rows)} runs: {len(groups)} models x {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
        f"{sum(r['status'] == 'completed' for r in rows)} completed. Figures are on the validation set, "
        "mean ± standard deviation over seeds. Loss is in nats per answer token; excess loss is the loss "
        "above the task's Bayes floor.",
    ]
    if any(g["accuracy_by_distance"] for g in groups):
        lines += [
            "",
            "Accuracy by distance counts the answer tokens whose source lies that many tokens back. The collapse "
            f"point is the first distance bucket whose mean accuracy falls below {THRESHOLD}; chance is "
            f"{chance:.2f} (four barks).",
        ]
    lines += ["", markdown_table(headers, cells), ""]
    lines += [f"- {g['sentence']}" for g in groups]
    lines += ["", "![collapse.png](collapse.png)", "", "## Runs", ""]
    swept = any(r["sweep"] for r in rows)
    run_headers = ["run", "model", "seed"] + ["sweep"] * swept + ["status", "val loss", "val acc", "wall s"]
    run_cells = []
    for r in rows:
        cell = [r["run"] or "-", r["label"], str(r["seed"])]
        cell += [", ".join(f"{k}={v}" for k, v in r["sweep"].items())] * swept + [r["status"]]
        cell += [f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in ("val_loss", "val_accuracy")]
        cell.append(f"{r['wall_seconds']:.0f}" if r.get("wall_seconds") is not None else "-")
        run_cells.append(cell)
    lines += [markdown_table(run_headers, run_cells, left=4 + swept), ""]
    problems = [r for r in rows if r.get("message")]
    if problems:
        lines += ["Runs that did not complete:", ""]
        lines += [f"- `{r['name']}` ({r['status']}): {r['message']}" for r in problems]
        lines.append("")
    return "\n".join(lines)
