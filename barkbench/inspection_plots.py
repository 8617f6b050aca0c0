"""`inspect`'s pictures: attention maps, the decoder's alignment with the source, and how far back
the answer's loss reaches (gradient norms)."""

from __future__ import annotations

from pathlib import Path

from barkbench.plots import plt


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
