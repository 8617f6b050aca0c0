"""The pictures of results: a run's curves.png; a study's collapse.png (accuracy and exact match
against the task's bucket, one line per model, or bars for tasks without buckets), memory_map.png
and curves.png. (`inspect`'s pictures: barkbench/inspection_plots.py.)"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and safe in worker processes and on servers

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from barkbench.figures import BY_BUCKET, CONTENT, EXACT_BY_BUCKET, EXCESS, STOP, on_test  # noqa: E402
from barkbench.rundir import read_jsonl  # noqa: E402
from barkbench.study.findings import bucket_axis, key_of, short, sweep_cell  # noqa: E402

SHOWN_DPI = 120


SUPTITLE_Y = 0.98  # where matplotlib puts the top of a suptitle, as a share of the figure's height


def save(fig, path: Path) -> None:
    """Lay the figure out and write it. tight_layout leaves a suptitle out of its reckoning, which
    in a tall figure lets the first panels' titles run into it: they are kept below it, its lines
    measured in inches down from where it starts."""
    title, top = fig.get_suptitle(), 1.0
    if title:
        size = FontProperties(size=plt.rcParams["figure.titlesize"]).get_size_in_points()  # suptitle's default
        top = SUPTITLE_Y - (title.count("\n") + 1) * size * 1.25 / 72 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=SHOWN_DPI)
    plt.close(fig)


# ---- a run --------------------------------------------------------------------------------


def run_curves(run: Path, title: str, content: str = "barks", stopped: int | None = None) -> Path:
    """curves.png of a run: train and validation loss, validation accuracy, against step; where
    it stopped early (train.stop_at), a line at that step."""
    rows = read_jsonl(run / "metrics.jsonl")
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in rows]
    loss.plot(steps, [r["train_loss"] for r in rows], marker=".", label="train loss (mean since the last point)")
    loss.plot(steps, [r["val_loss"] for r in rows], marker=".", label="validation loss")
    if rows and "excess_loss" in rows[-1]:
        floor = rows[-1]["val_loss"] - rows[-1]["excess_loss"]
        loss.axhline(floor, color="grey", linestyle="--", linewidth=1, label=f"the task's floor ({floor:.3f})")
    for figure in (CONTENT, STOP):
        acc.plot(steps, [r.get(figure.name) for r in rows], marker=".", label=figure.said(content))
    for panel in (loss, acc) if stopped is not None else ():
        panel.axvline(stopped, color="black", linestyle=":", linewidth=1, label=f"stopped early at step {stopped}")
    loss.set(xlabel="training step", ylabel="nats per answer token", title="loss")
    acc.set(xlabel="training step", ylabel="validation accuracy", ylim=(0, 1.05), title="validation accuracy")
    loss.legend(fontsize="small")
    acc.legend(fontsize="small")
    fig.suptitle(title)
    save(fig, run / "curves.png")
    return run / "curves.png"


# ---- a study ------------------------------------------------------------------------------


def study_pictures(study: Path, findings: dict, task, capacity_key: str | None) -> list[str]:
    """Draw the study's pictures; return their file names."""
    lines, title = findings["models"], findings["study"]
    if findings["bucket"]:
        collapse(lines, bucket_axis(lines), study / "collapse.png", title, task, findings)
    elif task.sample_figures:
        grouped_bars(lines, task.sample_figures, study / "collapse.png", f"{title}: samples after training", "share")
    else:
        content = findings["content"]
        names = {on_test(f): f"test {f.said(content)}" for f in (CONTENT, EXCESS)}
        grouped_bars(lines, names, study / "collapse.png", f"{title}: final figures on test", "value")
    names = ["collapse.png"]
    if capacity_key:
        memory_map(lines, bucket_axis(lines), capacity_key, study / "memory_map.png", title, task, findings)
        names.append("memory_map.png")
    if findings.get("frontier"):
        frontier(findings["frontier"], study / "frontier.png", title, findings)
        names.append("frontier.png")
    study_curves(study, findings["runs"], study / "curves.png", title, findings["content"])
    return names + ["curves.png"]


def frontier(points: list[dict], path: Path, title: str, findings: dict) -> None:
    """frontier.png: test accuracy of the answer's content against the state each model carries per
    sequence (log scale), one line per model family through its settings in order of state, the
    spread over seeds as error bars; beside it the same against parameters, the other half of a
    fair comparison. A family whose state is a cache (it grows with the sequence) is dashed. In a
    study that sweeps a setting, a family has a line per sweep cell (a marker each), never one
    across cells: a swept task setting is not a capacity of the model."""
    fig, panels = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    families = list(dict.fromkeys(p["model"] for p in points))
    cells = list(dict.fromkeys(sweep_cell(p) for p in points))
    several = any(len(line["seeds"]) > 1 for line in findings["models"])  # as collapse.png and report.md
    for i, family in enumerate(families):
        cache = all(p["cache"] for p in points if p["model"] == family)
        for j, where in enumerate(cells):
            ps = [p for p in points if p["model"] == family and sweep_cell(p) == where]
            mean, std = [p["accuracy"]["mean"] for p in ps], [p["accuracy"]["std"] for p in ps]
            label = family + f" at {where}" * bool(where) + " (a cache: grows with the sequence)" * cache
            for panel, key in zip(panels, ("state_bytes", "params")):
                at = [(p[key], m, s) for p, m, s in zip(ps, mean, std) if p[key]]
                if at:
                    x, m, s = zip(*sorted(at))
                    style = dict(fmt="--" if cache else "-", marker=MARKERS[j % len(MARKERS)], color=f"C{i % 10}")
                    panel.errorbar(x, m, yerr=s, capsize=3, label=label, **style)
    for panel, what in zip(panels, ("state carried per sequence (bytes, log scale)", "parameters (log scale)")):
        panel.set_xscale("log")
        # ticks at 1, 2 and 5 of each decade, written short (20k, not 20,000): the default labels
        # of a log axis that spans less than two decades run into one another, and written-out
        # ones do over three decades
        panel.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
        panel.xaxis.set_major_formatter(FuncFormatter(lambda v, _: short_number(v)))
        panel.xaxis.set_minor_formatter(NullFormatter())
        panel.axhline(
            findings["chance"], color="grey", linestyle="--", linewidth=1, label=f"chance ({findings['chance']:.2f})"
        )
        panel.set(xlabel=what, ylim=(0, 1.05))
        panel.grid(alpha=0.3)
    spread = " (mean ± std over seeds)" if several else ""
    panels[0].set_ylabel(f"test {CONTENT.said(findings['content'])}{spread}")
    panels[0].set_title("recall against state (at the study's longest sequence)")
    panels[1].set_title("recall against parameters")
    handles, names = panels[0].get_legend_handles_labels()
    panels[1].legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.suptitle(f"{title}: the recall-memory frontier")
    save(fig, path)


def short_number(v: float) -> str:
    """An axis tick as a reader takes it in at a glance: 500, 2k, 50k, 1M."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


MARKERS = "osD^v<>Ph*X"  # one per line: lines that lie on one another stay told apart


def collapse(lines: list[dict], axis: list[str], path: Path, title: str, task, findings: dict) -> None:
    """Test accuracy of the answer's content, and exact match of each unit (an answer, a query),
    against the bucket: one line per model, each with a marker of its own and drawn a little to
    the side of the others so that lines at the same values (all at 1.00) stay visible, the spread
    over seeds as a band, chance and the threshold marked, and the buckets no run trained on shaded."""
    # a tall legend (mqar's 27 lines) gets the height it needs; beyond ten lines the colours would
    # repeat, so a family keeps one colour and its settings are told apart by their markers
    fig, panels = plt.subplots(1, 2, figsize=(14, max(5.0, 1.6 + 0.2 * len(lines))), sharey=True)
    families = list(dict.fromkeys(line["model"] for line in lines))
    by_family = len(lines) > 10
    several = any(len(line["seeds"]) > 1 for line in lines)
    width = min(0.3, 0.06 * len(lines))  # the spread of the lines' sideways offsets, in buckets
    for panel, figure in zip(panels, (BY_BUCKET, EXACT_BY_BUCKET)):
        key, what = figure.name, figure.said(findings["content"], findings["unit"])
        for i, line in enumerate(lines):
            offset = (i / max(len(lines) - 1, 1) - 0.5) * width
            at = [(axis.index(b) + offset, s["mean"], s["std"]) for b, s in line.get(key, {}).items()]
            if not at:
                continue
            x, mean, std = zip(*at)
            seeds = len(line["seeds"])
            (drawn,) = panel.plot(
                x,
                mean,
                marker=MARKERS[i % len(MARKERS)],
                color=f"C{families.index(line['model']) % 10}" if by_family else None,
                markersize=6,
                alpha=0.85,
                label=f"{line['name']} ({seeds} seed{'s' * (seeds > 1)})",
            )
            low, high = [max(0.0, m - s) for m, s in zip(mean, std)], [min(1.0, m + s) for m, s in zip(mean, std)]
            panel.fill_between(x, low, high, color=drawn.get_color(), alpha=0.15, linewidth=0)
        if key == "by_bucket":  # chance and the threshold are a token's; a whole answer's chance is far lower
            chance = findings["chance"]
            panel.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})")
            panel.axhline(
                findings["threshold"],
                color="grey",
                linestyle=":",
                linewidth=1,
                label=f"collapse threshold ({findings['threshold']})",
            )
        untrained = [i for i, b in enumerate(axis) if not any(b in line.get("trained", []) for line in lines)]
        if untrained:
            panel.axvspan(untrained[0] - 0.5, untrained[-1] + 0.5, color="grey", alpha=0.1, label="never trained on")
        panel.set_xticks(range(len(axis)), axis)
        spread = " (mean ± std over seeds)" if several else ""
        panel.set(xlabel=task.buckets.axis, ylabel=f"test {what}{spread}", ylim=(0, 1.05), title=what)
        panel.grid(axis="y", alpha=0.3)
    handles, names = panels[0].get_legend_handles_labels()
    panels[1].legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # never over a line
    fig.suptitle(f"{title}: test accuracy by {task.buckets.name}")
    save(fig, path)


def memory_map(lines: list[dict], axis: list[str], key: str, path: Path, title: str, task, findings: dict) -> None:
    """One panel per model: rows the swept capacity value, columns the buckets, colour the mean test
    accuracy on one scale from chance (dark) to 1, every cell written, buckets not trained on
    hatched, buckets not measured grey."""
    labels = list(dict.fromkeys(line["label"] for line in lines))
    values = sorted({line["sweep"][key] for line in lines})
    cmap = LinearSegmentedColormap.from_list("recall", ["#2b0a3d", "#b63679", "#fb8761", "#fcfdbf"]).with_extremes(
        bad="#e8e8e8"
    )
    width, height = max(3.0, 0.75 * len(axis) + 1.0), 1.6 + 0.6 * len(values)
    cols = min(2, len(labels))  # two panels a row: wide enough to read every cell
    rows = -(-len(labels) // cols)
    fig, grid_axes = plt.subplots(
        rows, cols, figsize=(width * cols + 1.5, height * rows + 0.8), squeeze=False, layout="constrained"
    )
    axes = [[ax for row in grid_axes for ax in row]]
    for ax in axes[0][len(labels) :]:
        ax.set_visible(False)
    image, hatched_any = None, False
    for ax, label in zip(axes[0], labels):
        grid = [[None] * len(axis) for _ in values]
        for line in (line for line in lines if line["label"] == label):
            r = values.index(line["sweep"][key])
            for b, s in line.get("by_bucket", {}).items():
                c = axis.index(b)
                grid[r][c] = s["mean"]
                if b not in line["trained"]:
                    hatched_any = True
                    ax.add_patch(
                        plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="//", edgecolor="grey", lw=0)
                    )
        shown = [[float("nan") if v is None else v for v in row] for row in grid]
        image = ax.imshow(shown, cmap=cmap, vmin=findings["chance"], vmax=1.0, aspect="auto", origin="lower")
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if v is not None:
                    ax.text(
                        c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v > 0.7 else "white"
                    )
        ax.set_xticks(range(len(axis)), axis, rotation=45, fontsize=7)
        ax.set_yticks(range(len(values)), [str(v) for v in values])
        ax.set(title=label, xlabel=f"{task.buckets.name} bucket")
    for ax in axes[0][::cols]:
        ax.set_ylabel(key)
    fig.colorbar(
        image, ax=axes[0][: len(labels)], label=f"test accuracy\n(chance {findings['chance']:.2f} at the bottom)"
    )
    notes = "grey: not measured" + "; hatched: never trained on" * hatched_any
    fig.suptitle(
        f"{title}\nwhat each model still recalls, by {key.rsplit('.', 1)[-1]} and {task.buckets.name} ({notes})"
    )
    fig.savefig(path, dpi=SHOWN_DPI)
    plt.close(fig)


def grouped_bars(lines: list[dict], figures: dict[str, str], path: Path, title: str, ylabel: str) -> None:
    """For tasks without buckets: a group of bars per model, one bar per figure, std as error bars."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(lines) + 2), 5))
    width = 0.8 / len(figures)
    for j, (key, label) in enumerate(figures.items()):
        at = [(i, line[key]["mean"], line[key]["std"]) for i, line in enumerate(lines) if line.get(key)]
        if at:
            x, mean, std = zip(*at)
            bars = ax.bar(
                [i + (j - (len(figures) - 1) / 2) * width for i in x], mean, width, yerr=std, capsize=4, label=label
            )
            ax.bar_label(bars, fmt="%.2f", fontsize="small", padding=2)
    ax.set_xticks(range(len(lines)), [f"{line['name']} ({line['completed']} seeds)" for line in lines])
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]) * 1.25)  # room for the labels and the legend above the bars
    ax.set_ylabel(f"{ylabel} (bars: mean over seeds; whiskers: ± std)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no bars at all while no run has completed
        ax.legend(loc="upper center", ncols=len(figures), fontsize="small")
    save(fig, path)


CURVE_COLUMNS = 6  # models side by side in a study's curves.png; more go on to further rows


def study_curves(study: Path, rows: list[dict], path: Path, title: str, content: str) -> None:
    """curves.png of a study: a panel pair per model, validation loss above and accuracy below
    against step, CURVE_COLUMNS models to a row (so that a study of many models stays a picture one
    can read), every loss panel on one scale and every accuracy panel on another; every run of the
    model drawn, a colour per value of the swept and tuned keys together, a line style per seed,
    an x where a run stopped early (train.stop_at)."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    columns = min(len(labels), CURVE_COLUMNS)
    pairs = -(-len(labels) // columns)  # rows of panel pairs
    fig, axes = plt.subplots(2 * pairs, columns, figsize=(4 * columns + 1, 7 * pairs), squeeze=False)
    places = [
        (axes[2 * (i // columns)][i % columns], axes[2 * (i // columns) + 1][i % columns])
        for i in range(pairs * columns)
    ]
    panels = places[: len(labels)]
    for loss, accuracy in places[len(labels) :]:  # the empty places of the last row
        loss.set_visible(False)
        accuracy.set_visible(False)
    for loss, accuracy in panels:
        accuracy.sharex(loss)
        if loss is not panels[0][0]:
            loss.sharey(panels[0][0])
            accuracy.sharey(panels[0][1])
    styles = ["-", "--", ":", "-."]
    for i, (label, (loss, accuracy)) in enumerate(zip(labels, panels)):
        members = [r for r in rows if r["label"] == label and r["run"]]
        settings = list(dict.fromkeys(key_of({**r["sweep"], **r["tune"]}) for r in members))
        seeds = sorted({r["seed"] for r in members})
        for r in members:
            metrics = read_jsonl(study / r["run"] / "metrics.jsonl")
            steps, figures = [m["step"] for m in metrics], [m.get(CONTENT.name) for m in metrics]
            colour = f"C{settings.index(key_of({**r['sweep'], **r['tune']})) % 10}"
            style = styles[seeds.index(r["seed"]) % len(styles)]
            name = ", ".join([f"seed {r['seed']}", *short({**r["sweep"], **r["tune"]})])
            loss.plot(steps, [m["val_loss"] for m in metrics], style, color=colour, alpha=0.8, label=name)
            accuracy.plot(steps, figures, style, color=colour, alpha=0.8)
            if r.get("stopped_early") and steps:
                accuracy.plot(steps[-1], figures[-1], "x", color=colour, markersize=8)
        first = i % columns == 0
        loss.set(title=label, ylabel="validation loss\n(nats per answer token)" if first else "")
        accuracy.set(xlabel="training step", ylim=(0, 1.05))
        accuracy.set_ylabel(f"validation\n{CONTENT.said(content)}" if first else "")
        for panel in (loss, accuracy):  # the shared scale is read off the row's first panel
            panel.tick_params(labelleft=first)
        if 0 < len(members) <= 12:
            loss.legend(fontsize="x-small")
    stopped = "; x: stopped early" if any(r.get("stopped_early") for r in rows) else ""
    fig.suptitle(
        f"{title}: every run's validation curves\n(colour: the swept and tuned values; line style: seed{stopped})"
    )
    save(fig, path)
