"""The study's plot, collapse.png: accuracy against distance per model, or grouped bars of the
final figures for tasks without distances (the cycle task's stop rate and cycle adherence)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and safe in worker processes and on servers

import matplotlib.pyplot as plt  # noqa: E402


def accuracy_by_distance(groups: list[dict], path: Path, title: str, threshold: float, chance: float) -> None:
    """One line per group: mean accuracy in each distance bucket, the spread over seeds shaded."""
    buckets = list(dict.fromkeys(b for g in groups for b in g["accuracy_by_distance"]))
    fig, ax = plt.subplots(figsize=(10, 5))
    for g in groups:
        at = [(buckets.index(b), s["mean"], s["std"]) for b, s in g["accuracy_by_distance"].items()]
        if not at:
            continue
        x, mean, std = zip(*at)
        (line,) = ax.plot(x, mean, marker="o", label=f"{g['name']} ({g['completed']} seeds)")
        low = [max(0.0, m - s) for m, s in zip(mean, std)]
        high = [min(1.0, m + s) for m, s in zip(mean, std)]
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f}: four barks)")
    ax.axhline(threshold, color="grey", linestyle=":", linewidth=1, label=f"collapse threshold ({threshold})")
    ax.set_xticks(range(len(buckets)), buckets)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("distance from a message token to where it is repeated (tokens)")
    ax.set_ylabel("validation accuracy (mean ± std over seeds)")
    ax.set_title(f"{title}: accuracy against distance")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # beside the plot: never over a line
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grouped_bars(groups: list[dict], figures: dict[str, str], path: Path, title: str, ylabel: str) -> None:
    """For each group a bar per figure (key -> axis label), with the spread over seeds as error bars."""
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2), 5))
    width = 0.8 / len(figures)
    for j, (key, label) in enumerate(figures.items()):
        at = [(i, g[key]["mean"], g[key]["std"]) for i, g in enumerate(groups) if g.get(key)]
        if at:
            x, mean, std = zip(*at)
            bars = ax.bar([i + (j - (len(figures) - 1) / 2) * width for i in x], mean, width, yerr=std, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize="small", padding=2)
    ax.set_xticks(range(len(groups)), [f"{g['name']} ({g['completed']} seeds)" for g in groups])
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]) * 1.25)  # room for the labels and the legend above the bars
    ax.set_ylabel(f"{ylabel} (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no bars at all while no run has completed
        ax.legend(loc="upper center", ncols=len(figures), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
