"""`inspect`'s pictures: attention maps, the decoder's alignment with the source, and how far back
the answer's loss reaches (gradient norms). Each marks the message (the prompt tokens the answer
needs, shaded orange) and the answer (after the dashed line), and names the run."""

from __future__ import annotations

import textwrap
from pathlib import Path

from barkbench.plots import plt, save

MESSAGE = {"color": "orange", "alpha": 0.18}
DECADES = 6  # how far below its largest gradient norm gradients.png's axis reaches


def outline_message(ax, message, rows: int) -> None:
    """On a map: the message's columns outlined and their labels in orange (a fill would hide the weights)."""
    if message:
        ax.add_patch(
            plt.Rectangle(
                (message[0] - 0.5, -0.5), message[1] - message[0] + 1, rows, fill=False, edgecolor="orange", lw=2
            )
        )
        for label in ax.get_xticklabels()[message[0] : message[1] + 1]:
            label.set_color("darkorange")


def font(n: int) -> int:
    return max(3, min(9, 400 // max(n, 1)))


def heads(weights, rows: list[str], cols: list[str], path: Path, title: str, ylabel: str, xlabel: str, marks) -> Path:
    """One panel per head of [heads, rows, cols] weights, a shared colour bar; marks(ax) draws the regions."""
    n = weights.shape[0]
    size = max(4.0, 0.16 * max(len(rows), len(cols)))
    fig, axes = plt.subplots(1, n, figsize=(size * n + 1.2, size + 0.6), squeeze=False, layout="constrained")
    image = None
    for h, ax in enumerate(axes[0]):
        image = ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_title(f"head {h + 1}")
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=font(len(cols)))
        ax.set_yticks(range(len(rows)), rows, fontsize=font(len(rows)))
        ax.set(xlabel=xlabel, ylabel=ylabel if h == 0 else "")
        marks(ax)
    fig.colorbar(image, ax=axes[0].tolist(), label="attention weight (each row sums to 1)", shrink=0.8)
    width = int((size * n + 1.2) * 9)  # about the characters a line of the figure holds
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in title.split("\n")), fontsize="medium")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def attention_map(weights, labels: list[str], answer_start: int, message, path: Path, title: str) -> Path:
    """attention-layer<N>.png: for each position (row), how much it attends to each earlier one (column)."""

    def marks(ax):
        outline_message(ax, message, len(labels))
        ax.axhline(answer_start - 1.5, color="white", linestyle="--", linewidth=1)  # rows below predict the answer

    return heads(
        weights,
        labels,
        labels,
        path,
        f"{title}\nrows below the dashed line predict the answer; outlined in orange: the message it needs",
        "position (the token there)",
        "attends to (an earlier token)",
        marks,
    )


def alignment_map(weights, targets: list[str], sources: list[str], message, path: Path, title: str) -> Path:
    """alignment-layer<N>.png: for each answer token the decoder makes (row), how much it looks at
    each source token (column): Bahdanau et al.'s picture."""

    def marks(ax):
        outline_message(ax, message, len(targets))

    return heads(
        weights,
        targets,
        sources,
        path,
        f"{title}\nwhere the decoder looks in the source for each answer token; outlined: the source barks",
        "answer token being made",
        "source token (the prompt)",
        marks,
    )


def gradient_norms(norms: dict, labels, answer_start: int, message, title: str, path: Path) -> Path:
    """gradients.png: one line of gradient norms per state (log scale), the answer's start marked
    and the message shaded."""
    T = len(labels)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.14 * T), 4.8))
    # A state nothing later depends on (the last one) has no gradient at all: left out. One whose
    # only use is a prediction the model is sure of (the <EOS> at the end) has one far below the
    # rest, which would stretch the axis over decades that say nothing: the axis spans DECADES
    # below the largest norm, and smaller norms are marked at its bottom.
    shown = [norm.masked_fill(norm == 0, float("nan")) for norm in norms.values()]
    top = max((float(n.nan_to_num(0).max()) for n in shown), default=0.0)
    floor = top * 10.0**-DECADES
    below = False
    for (name, norm), values in zip(norms.items(), shown):
        (line,) = ax.semilogy(range(len(norm)), values.numpy(), marker=".", label=name)
        small = [i for i, v in enumerate(values.tolist()) if v < floor]
        if small:
            below = True
            ax.plot(small, [floor * 1.5] * len(small), "v", color=line.get_color(), markersize=5)
    if top > 0:
        ax.set_ylim(floor, top * 3)
    if below:
        ax.plot([], [], "v", color="grey", label=f"below 1e-{DECADES} of the largest (at the bottom)")
    ax.axvline(answer_start - 0.5, color="grey", linestyle="--", label="the answer starts")
    if message:
        ax.axvspan(message[0] - 0.5, message[1] + 0.5, label="the message the answer needs", **MESSAGE)
    ax.set_xticks(range(T), labels, rotation=90, fontsize=max(3, min(8, 600 // T)))
    ax.set_xlabel("position in the sequence (the token there)")
    ax.set_ylabel("gradient norm of the answer's loss\nat the model's state (log scale)")
    ax.set_title(f"{title}\nhow strongly the answer's loss can still change the state at each earlier position")
    ax.legend(fontsize=8)
    save(fig, path)
    return path
