"""Every picture barkbench draws. A study's collapse.png: accuracy against distance per model,
or grouped bars of the final figures for tasks without distances (the cycle task's stop rate
and cycle adherence). `inspect`'s attention maps and gradient norms."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and safe in worker processes and on servers

import matplotlib.pyplot as plt  # noqa: E402


def accuracy_by_bucket(groups: list[dict], path: Path, title: str, axis: str, threshold: float, chance: float) -> None:
    """One line per group: mean accuracy in each bucket (echo: distance), the spread over seeds shaded."""
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
    ax.set_xlabel(axis)
    ax.set_ylabel("validation accuracy (mean ± std over seeds)")
    ax.set_title(f"{title}: accuracy by {axis.split(' ')[0]}")
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


def attention_heads(weights, labels: list[str], path: Path, layer: int) -> Path:
    """`inspect`'s attention-layer<N>.png: one panel per head of [heads, T, T] weights, tokens on both axes."""
    heads, T = weights.shape[0], weights.shape[-1]
    size = max(4.0, 0.16 * T)
    fig, axes = plt.subplots(1, heads, figsize=(size * heads, size), squeeze=False)
    font = max(3, min(9, 400 // T))
    for h, ax in enumerate(axes[0]):
        ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"layer {layer}, head {h + 1}")
        ax.set_xticks(range(T), labels, rotation=90, fontsize=font)
        ax.set_yticks(range(T), labels, fontsize=font)
        ax.set_xlabel("attends to (earlier token)")
        ax.set_ylabel("position (token)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def gradient_norms(norms: dict, labels, answer_start: int, message, title: str, path: Path) -> Path:
    """`inspect`'s gradients.png: one line of gradient norms per state (log scale), the answer's
    start marked and the prompt tokens the answer needs (`message`: first, last) shaded."""
    T = len(labels)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.14 * T), 4.5))
    for name, norm in norms.items():
        # A state nothing later depends on (the last one) has no gradient at all: leave it out.
        ax.semilogy(range(len(norm)), norm.masked_fill(norm == 0, float("nan")).numpy(), marker=".", label=name)
    ax.axvline(answer_start - 0.5, color="grey", linestyle="--", label="answer starts")
    if message:
        ax.axvspan(message[0] - 0.5, message[1] + 0.5, color="orange", alpha=0.15, label="the message")
    ax.set_xticks(range(T), labels, rotation=90, fontsize=max(3, min(8, 600 // T)))
    ax.set_ylabel("gradient norm of the answer's loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
