"""What a study's numbers show, in sentences that name the numbers they rest on and claim no more:
a model that never reaches the threshold "did not learn the task at this budget" (rather than
collapsing at the first bucket), and two models whose seeds' collapse points overlap are called
indistinguishable, not ranked."""

from __future__ import annotations

from barkbench.study.findings import THRESHOLD, learned, seed_positions, shown, sweep_cell, where


def near(value: float, chance: float) -> str:
    """Where a figure sits against chance, if it is near it or below it (a few sequences of one
    bucket can all be wrong: 0.00 is below chance, not near it)."""
    if abs(value - chance) < 0.05:
        return f", near chance ({chance:.2f})"
    return f", below chance ({chance:.2f})" if value < chance else ""


def describe(line: dict, task, protocol: dict | None, chance: float) -> str:
    """One sentence per line."""
    name = line["name"]
    if not line["completed"]:
        return f"{name}: none of its {line['runs']} runs completed, so there are no figures yet."
    if line.get("by_bucket"):
        text = describe_curve(line, task, protocol, chance)
    elif scored := [f"{label} {line[k]['mean']:.2f}" for k, label in task.sample_figures.items() if line.get(k)]:
        text = (  # a task whose samples it judges (cycle): those figures, then how far above the floor
            f"{name}'s samples score {', '.join(scored)}; its test loss is {line['test_excess_loss']['mean']:.3f} "
            "nats above the floor"
        )
    else:
        text = (
            f"{name} reaches test loss {line['test_loss']['mean']:.3f}, {line['test_excess_loss']['mean']:.3f} nats "
            f"above the floor, and test accuracy {line['test_bark_accuracy']['mean']:.2f} on the answer's {task.content}"
        )
    if line["completed"] < line["runs"]:
        text += f" ({line['runs'] - line['completed']} of its {line['runs']} runs did not complete; see the runs below)"
    return text + "."


def describe_curve(line: dict, task, protocol: dict | None, chance: float) -> str:
    name, what = line["name"], task.buckets.name
    acc = {b: s["mean"] for b, s in line["by_bucket"].items()}
    buckets, collapse = list(acc), line["collapse"]
    first, last, low, high = buckets[0], buckets[-1], min(acc.values()), max(acc.values())
    if not learned(line):
        return (
            f"{name} did not learn the task at this budget: its test accuracy stays below {THRESHOLD} at every "
            f"{what}, {shown(low)} to {shown(high)} from {first} to {last}{near(high, chance)}"
        )
    if collapse is None:
        text = f"{name} holds {shown(low)} test accuracy{' or more' * (low < 0.995)} at every {what} out to {last}"
    elif collapse == first:
        text = (
            f"{name} is below {THRESHOLD} already at the shortest {what} ({first}: {shown(acc[first])}) and "
            f"reaches {shown(high)} at most"
        )
    else:
        held = buckets[: buckets.index(collapse)]
        worst = min(acc[b] for b in held)
        text = (
            f"{name} holds {shown(worst)} test accuracy{' or more' * (worst < 0.995)} up to {what} "
            f"{held[-1].split('-')[1]} and falls below {THRESHOLD} at {collapse} ({shown(acc[collapse])})"
        )
        if last != collapse:
            text += f"; at {last} it is at {shown(acc[last])}"
        text += near(acc[last], chance)
    text += seeds_say(line)
    beyond = [b for b in buckets if b not in line["trained"]]
    if protocol and protocol["kind"] == "beyond" and beyond:
        text += f"; {beyond[0]} and beyond were never seen in training"
    return text


def seeds_say(line: dict) -> str:
    """Where the seeds' own curves fall below the threshold, and which did not learn at all."""
    seeds = list(line["seed_collapse"])
    if len(seeds) < 2:
        return ""
    learned_by_seed = line.get("seed_learned", {})
    lost = sum(not learned_by_seed.get(s, True) for s in seeds)
    points = [p for s, p in line["seed_collapse"].items() if learned_by_seed.get(s, True)]
    never = sum(p is None for p in points)
    fallen = sorted({p for p in points if p is not None}, key=lambda b: int(b.split("-")[0]))
    parts = []
    if never:
        parts.append(f"{never} {'never falls' if never == 1 else 'never fall'} below {THRESHOLD}")
    if fallen:
        span = fallen[0] if len(fallen) == 1 else f"{fallen[0]} to {fallen[-1]}"
        parts.append(f"{len(points) - never} {'falls' if len(points) - never == 1 else 'fall'} below it at {span}")
    if lost:
        parts.append(f"{lost} did not learn")
    if parts == [f"{len(seeds)} never fall below {THRESHOLD}"]:
        return f"; so does every one of its {len(seeds)} seeds"
    if len(parts) == 1 and fallen:
        return f"; its {len(seeds)} seeds fall below {THRESHOLD} at {span}"
    return f"; of its {len(seeds)} seeds, " + ", ".join(parts)


def compare(lines: list[dict], axis: list[str]) -> str | None:
    """One sentence ranking the lines of each sweep cell by how far their seeds hold above the
    threshold; lines whose seeds' collapse points overlap share a rank: indistinguishable. Lines
    that never reach the threshold have no collapse point to rank."""
    sentences = []
    cells: dict[str, list[dict]] = {}
    for line in lines:
        if line.get("seed_collapse") and learned(line):
            cells.setdefault(" ".join(f"{k}={v}" for k, v in line["sweep"].items()), []).append(line)
    for cell, members in cells.items():
        if len(members) < 2:
            continue
        ranges = {line["name"]: seed_positions(line, axis) for line in members}
        order = sorted(members, key=lambda line: (-ranges[line["name"]][-1], -ranges[line["name"]][0]))
        tiers: list[list[dict]] = []
        for line in order:  # a line joins the tier above when its seeds' range overlaps that tier's
            low = min(ranges[other["name"]][0] for other in tiers[-1]) if tiers else None
            if tiers and ranges[line["name"]][-1] >= low:
                tiers[-1].append(line)
            else:
                tiers.append([line])
        parts = []
        for tier in tiers:  # within a cell the cell goes without saying: the model's label is enough
            shown = [f"{line['label'] if cell else line['name']} ({where(line, axis)})" for line in tier]
            parts.append(shown[0] if len(tier) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]} (indistinguishable)")
        prefix = f"At {cell}, r" if cell else "R"
        sentences.append(
            f"{prefix}anked by where their seeds fall below {THRESHOLD} (later is better): "
            + " ahead of ".join(parts)
            + "."
        )
    return " ".join(sentences) or None


def protocol_text(protocol: dict, task) -> str:
    """How the runs met the x-axis, in words."""
    what, (lo, hi), (tlo, thi) = task.buckets.name, protocol["trained"], protocol["tested"]
    keys = " and ".join(f"task.{k}" for k in task.buckets.keys)
    if protocol["kind"] == "fixed":
        return (
            f"Each run trained and was tested at one fixed {what} (the sweep of {keys} sets it), {lo} to {hi} across "
            "the runs; a model's curve joins its runs."
        )
    if protocol["kind"] == "beyond":
        return (
            f"The runs trained on {what}s {lo} to {hi} and were tested on {what}s {tlo} to {thi} (the `eval` "
            f"section): the buckets past {hi} measure what no run saw in training."
        )
    return f"Every run trained and was tested on {what}s {lo} to {hi}, drawn at random for each sequence."


def size(n: float) -> str:
    """Bytes as a reader takes them in: "256 bytes", "4 KB", "1.5 MB" (KB = 1,024 bytes)."""
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} bytes"


def spread_said(s: dict) -> str:
    """mean ± std in two digits; the mean alone where the seeds agree (or there is one)."""
    return f"{s['mean']:.2f}" + (f" ± {s['std']:.2f}" if s["std"] else "")


def frontier_said(points: list[dict], content: str) -> str:
    """What frontier.png shows: each family's test accuracy at each state it was given, in order of
    state (and the sweep cell of each, in a study that sweeps a task setting); then, within one
    cell, at the state size where most fixed-state families meet (within a factor of two), each of
    them at its point nearest that size, side by side, with each attention family's best in that
    cell beside them and its cache."""
    families: dict[str, list[dict]] = {}
    for p in points:
        families.setdefault(p["model"], []).append(p)

    def at(p: dict) -> str:
        return f" at {cell}" if (cell := sweep_cell(p)) else ""

    clauses = []
    for model, ps in families.items():
        each = [f"{spread_said(p['accuracy'])} with {size(p['state_bytes'])}{at(p)}" for p in ps]
        kind = " of cache" if all(p["cache"] for p in ps) else ""
        clauses.append(f"{model} {', '.join(each[:-1]) + ' and ' * (len(each) > 1) + each[-1]}{kind}")
    text = (
        f"The recall-memory frontier (frontier.png; test accuracy of the answer's {content} against the state "
        f"each model carries per sequence at the study's longest sequence, KB = 1,024 bytes): {'; '.join(clauses)}."
    )
    fixed = [p for p in points if not p["cache"]]
    best: dict[str, dict] = {}
    for p in fixed:  # the families with a point in p's cell within a factor of two of p's state, each its nearest
        near: dict[str, dict] = {}
        for q in fixed:
            close = max(q["state_bytes"], p["state_bytes"]) <= 2 * min(q["state_bytes"], p["state_bytes"])
            if close and sweep_cell(q) == sweep_cell(p):
                if q["model"] not in near or abs(q["state_bytes"] - p["state_bytes"]) < abs(
                    near[q["model"]]["state_bytes"] - p["state_bytes"]
                ):
                    near[q["model"]] = q
        best = near if len(near) > len(best) else best
    if len(best) >= 2:
        around = sorted(q["state_bytes"] for q in best.values())[len(best) // 2]
        measured = sweep_cell(next(iter(best.values())))
        # each of those families at its point nearest that size, in the cell
        best = {
            model: min(
                (q for q in fixed if q["model"] == model and sweep_cell(q) == measured),
                key=lambda q: abs(q["state_bytes"] - around),
            )
            for model in best
        }
        ranked = sorted(best.values(), key=lambda q: -q["accuracy"]["mean"])
        lead = f"At {measured}, with" if measured else "With"
        text += f" {lead} about {size(around)} of state per sequence, " + ", ".join(
            f"{q['model']} reaches {spread_said(q['accuracy'])}" for q in ranked
        )
        caches = [
            max((q for q in ps if sweep_cell(q) == measured), key=lambda q: q["accuracy"]["mean"])
            for ps in families.values()
            if all(q["cache"] for q in ps) and any(sweep_cell(q) == measured for q in ps)
        ]
        text += "".join(
            f"; {q['model']} {spread_said(q['accuracy'])}, with a cache of {size(q['state_bytes'])}" for q in caches
        )
        text += "."
    return text
