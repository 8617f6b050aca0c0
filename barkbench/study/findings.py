"""A study's findings, from its rows (one per run: barkbench/study/outputs.py reads them from the
run directories): the tune value chosen for each model and sweep cell on validation, and, on
test, each model's figures and its accuracy against the task's bucket (echo: distance; copy:
source length) with the spread over seeds and the seeds' own collapse points. Pure: nothing here
reads or writes a file. sentences.py says what they show; report_file.py and plots.py draw them;
outputs.py writes them.

A *line* is what a picture draws as one line: one model entry at one value of every swept key
that does not set the bucket (a sweep of `task.min_gap,task.max_gap` is a sweep of the x-axis, so
its cells join into one line), its runs at the tune value chosen for each cell.
"""

from __future__ import annotations

import json
import statistics

from barkbench.buckets import bucket_order
from barkbench.figures import FIGURES as DECLARED
from barkbench.figures import on_test

THRESHOLD = 0.9  # the collapse point is the first bucket whose mean test accuracy falls below this
FIGURES = [on_test(f) for f in DECLARED]  # the figures a line reports, on the test split: what nothing was chosen on
CONSTANTS = ["params", "state_bytes"]  # the same for every seed of a model
# The state a model carries at its longest sequence (an attention cache's size depends on it):
# the most over a line's cells, since a line that joins several lengths must carry that much.
AT_LONGEST = "sequence_state_bytes"
FRONTIER_SIZES = 3  # a study whose lines span this many state sizes or more draws its frontier


def spread(values: list[float]) -> dict | None:
    """Mean and standard deviation over seeds (0 for a single seed), or None for no values."""
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def key_of(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def short(settings: dict) -> list[str]:
    """Dotted-key settings as a reader sees them in names and legends: ["lr=0.003", ...]; keys set
    together to one value by what they share, "task.min_gap,task.max_gap": [8, 8] as "gap=8"."""
    shown = []
    for key, value in settings.items():
        leaves = [k.rsplit(".", 1)[-1] for k in key.split(",")]
        if len(leaves) == 1:
            shown.append(f"{leaves[0]}={value}")
        elif len(set(map(json.dumps, value))) == 1 and (common := shared_suffix(leaves)):
            shown.append(f"{common}={value[0]}")
        else:
            shown += [f"{leaf}={v}" for leaf, v in zip(leaves, value)]
    return shown


def shared_suffix(names: list[str]) -> str:
    """The end that names share, from a word boundary: "gap" for min_gap and max_gap ("" if none)."""
    common = names[0]
    while common and not all(n.endswith(common) for n in names):
        common = common[1:]
    at_boundary = common.startswith("_") or all(n[: len(n) - len(common)].endswith("_") for n in names)
    return common.lstrip("_") if at_boundary else ""


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
        for k in FIGURES + CONSTANTS + list(task.sample_figures) + [AT_LONGEST]:
            over_cells = max if k == AT_LONGEST else statistics.fmean
            line[k] = spread([over_cells(r[k] for r in rs) for rs in seeds.values() if all(k in r for r in rs)])
        if name:
            curves = {s: merged(rs, f"test_accuracy_by_{name}") for s, rs in seeds.items()}
            line["by_bucket"] = over_seeds(curves)
            line["exact_by_bucket"] = over_seeds(
                {s: merged(rs, f"test_exact_match_by_{name}") for s, rs in seeds.items()}
            )
            mean = {b: s["mean"] for b, s in line["by_bucket"].items()}
            line["learned"] = reached(mean)  # never at the threshold: it did not learn, so it has no collapse point
            line["collapse"] = collapse(mean) if line["learned"] else None
            line["seed_collapse"] = {str(s): collapse(curve) for s, curve in curves.items()}
            line["seed_learned"] = {str(s): reached(curve) for s, curve in curves.items()}
            line["trained"] = sorted(set().union(*(trained[r["name"]] for r in runs)), key=bucket_order)
        lines.append(line)
    return lines


def frontier(lines: list[dict]) -> list[dict]:
    """The recall-memory frontier (Arora et al. 2024, Based, Fig. 2): a point per line, by model
    family and then state, with the state it carries per sequence at its longest sequence (runs
    from before barkbench measured that give their state at context_length), its parameters, its
    settings and its test accuracy of the answer's content over seeds; `cache` where the state
    grows with the sequence (attention's). None unless the lines span FRONTIER_SIZES state sizes."""
    points = []
    for line in lines:
        state = line.get(AT_LONGEST) or line.get("state_bytes")
        if state is None or line.get("test_bark_accuracy") is None:
            continue
        full = line.get("state_bytes") or state
        points.append(
            {
                "model": line["model"],
                "label": line["label"],
                "line": line["name"],
                "settings": line["sweep"],
                "state_bytes": state["mean"],
                "cache": full["mean"] != state["mean"],
                "params": line["params"]["mean"] if line.get("params") else None,
                "accuracy": line["test_bark_accuracy"],
            }
        )
    if len({p["state_bytes"] for p in points}) < FRONTIER_SIZES:
        return None
    families = list(dict.fromkeys(p["model"] for p in points))
    return sorted(points, key=lambda p: (families.index(p["model"]), p["state_bytes"]))


def sweep_cell(point: dict) -> str:
    """The cell of the study's swept settings that are not the model's a frontier point was measured
    in, as a reader sees it ("message_length=4"), or "" where it sweeps none. A family's line on the
    frontier runs through its capacity settings (its entries, a swept `model.` key) within one cell:
    a swept task setting is not a capacity of the model."""
    task = {k: v for k, v in point["settings"].items() if not all(p.startswith("model.") for p in k.split(","))}
    return ", ".join(short(task))


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


def reached(curve: dict[str, float]) -> bool:
    """Whether a curve is at the threshold anywhere: whether the model learned the task at all."""
    return any(accuracy >= THRESHOLD for accuracy in curve.values())


def collapse(curve: dict[str, float]) -> str | None:
    """The first bucket whose accuracy falls below THRESHOLD, or None if none does."""
    return next((b for b, accuracy in curve.items() if accuracy < THRESHOLD), None)


def position(bucket: str | None, axis: list[str], learned: bool = True) -> int:
    """A collapse point's place on the x-axis; never collapsing is past the last bucket, and a seed
    that did not learn is before the first."""
    if not learned:
        return -1
    return len(axis) if bucket is None else axis.index(bucket)


def learned(line: dict) -> bool:
    return line.get("learned", any(s["mean"] >= THRESHOLD for s in line.get("by_bucket", {}).values()))


def seed_positions(line: dict, axis: list[str]) -> list[int]:
    """Each seed's collapse point's place on the x-axis (position), in order."""
    learned_by_seed = line.get("seed_learned", {})
    return sorted(position(p, axis, learned_by_seed.get(s, True)) for s, p in line["seed_collapse"].items())


NEVER = "never"  # the one word for a curve that holds at every bucket
NOT_LEARNED = "did not learn"


def where(line: dict, axis: list[str]) -> str:
    """The seeds' collapse points in words: "never", "32-63", "16-31 to 64-127", and how many
    seeds did not learn ("did not learn" alone when none did)."""
    points = [p for p in seed_positions(line, axis) if p >= 0]
    lost = len(line["seed_collapse"]) - len(points)
    if not points:
        return NOT_LEARNED
    name = [axis[p] if p < len(axis) else NEVER for p in (points[0], points[-1])]
    span = name[0] if name[0] == name[1] else f"{name[0]} to {name[1]}"
    return span + (f"; {lost} seed{'s' * (lost > 1)} did not learn" if lost else "")


def shown(value: float, digits: int = 2) -> str:
    """A figure to `digits` places, or more where fewer would round it across THRESHOLD (0.896 is
    "0.896", not "0.90", beside a sentence that says it is below 0.9)."""
    text = f"{value:.{digits}f}"
    while (value < THRESHOLD) != (float(text) < THRESHOLD) and digits < 6:
        digits += 1
        text = f"{value:.{digits}f}"
    return text


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
