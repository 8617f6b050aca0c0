"""`barkbench inspect`: pictures of what a trained model looks at, and what it can still learn from.

attention-layer<N>.png  one panel per head: for each position (row), how much it attends to
                        each earlier position (column), with the tokens on both axes.
gradients.png           for the loss on the answer, the gradient norm with respect to the
                        model's state at every position, on a log scale: how strongly each
                        earlier position can still be changed by the answer. An RNN's falls
                        off with distance (the vanishing gradient); attention keeps a direct
                        path back to the message.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from barkbench.config import RunConfig  # noqa: E402
from barkbench.evaluate import answer_loss  # noqa: E402
from barkbench.models import BarkGPT  # noqa: E402
from barkbench.sample import generate  # noqa: E402
from barkbench.tasks import EOS, TASKS, VOCAB, encode, stream  # noqa: E402

# The default sequence keeps the gap short enough that every token label stays readable.
INSPECT_GAP = 24


def example(cfg: RunConfig, model, prompt: str | None) -> tuple[list[int], int]:
    """The tokens to inspect and where the answer starts: the given prompt with the model's own
    greedy answer, or one sequence of the run's validation task with its true answer."""
    if prompt:
        ids = encode(prompt)
        return ids + generate(model, ids, 1, cfg.sample.max_new_tokens, temperature=0)[0], len(ids)
    task = cfg.val_task
    if task.name == "echo":
        gap = min(task.max_gap, INSPECT_GAP)
        task = task.model_copy(update={"min_gap": min(task.min_gap, gap), "max_gap": gap})
    data = TASKS[task.name].make(task, 1, stream(cfg.seed, "inspect"))
    tokens = data.tokens[0].tolist()
    return tokens[: tokens.index(EOS) + 1], int(data.answer_start[0])


def attention_layers(model) -> list:
    if isinstance(model, BarkGPT):
        return [block.attn for block in model.blocks if block.attn is not None]
    return [model.attn] if model.attn is not None else []


def gpt_gradients(model, x, y, mask) -> tuple[list[torch.Tensor], list[str]]:
    """Gradient norms of the answer's loss at the residual stream entering every block."""
    states: list[torch.Tensor] = []

    def keep(_module, args):
        args[0].retain_grad()
        states.append(args[0])

    hooks = [block.register_forward_pre_hook(keep) for block in model.blocks]
    logits, _ = model(x)
    answer_loss(logits, y, mask).backward()
    for h in hooks:
        h.remove()
    return [s.grad[0].norm(dim=-1) for s in states], [f"into block {i + 1}" for i in range(len(states))]


def rnn_gradients(model, x, y, mask) -> tuple[list[torch.Tensor], list[str]]:
    """Gradient norms of the answer's loss at the recurrent state carried out of every position.

    The model runs one token at a time so that each carried state is a tensor of its own: its
    gradient is everything the later positions, the answer among them, ask of it.
    """
    state, carried, logits = None, [], []
    for t in range(x.shape[1]):
        out, state = model(x[:, t : t + 1], state)
        hidden = state[0] if isinstance(state[0], tuple) else (state[0],)  # (h,) or an LSTM's (h, c)
        for h in hidden:
            h.retain_grad()
        carried.append(hidden)
        logits.append(out)
    answer_loss(torch.cat(logits, 1), y, mask).backward()
    norms = [sum(float(h.grad.pow(2).sum()) for h in hidden if h.grad is not None) ** 0.5 for hidden in carried]
    return [torch.tensor(norms)], ["recurrent state"]


def inspect(cfg: RunConfig, model, prompt: str | None, out_dir: Path) -> list[Path]:
    """Draw the pictures for a loaded model; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, answer_start = example(cfg, model, prompt)
    labels = [VOCAB[t] for t in tokens[:-1]]
    x = torch.tensor([tokens[:-1]])
    y = torch.tensor([tokens[1:]])
    mask = torch.arange(1, len(tokens))[None] >= answer_start
    model.eval()

    written = []
    for n, layer in enumerate(attention_layers(model), 1):
        layer.keep_weights = True
        with torch.no_grad():
            model(x)
        written.append(draw_attention(layer.weights[0], labels, out_dir / f"attention-layer{n}.png", n))
        layer.keep_weights = False
    norms, names = (gpt_gradients if isinstance(model, BarkGPT) else rnn_gradients)(model, x, y, mask)
    written.append(draw_gradients(norms, names, labels, answer_start, out_dir / "gradients.png", cfg))
    return written


def draw_attention(weights: torch.Tensor, labels: list[str], path: Path, layer: int) -> Path:
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


def draw_gradients(norms, names, labels, answer_start, path: Path, cfg: RunConfig) -> Path:
    T = len(labels)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.14 * T), 4.5))
    for norm, name in zip(norms, names):
        # A state nothing later depends on (the last one) has no gradient at all: leave it out.
        ax.semilogy(range(T), norm.masked_fill(norm == 0, float("nan")).numpy(), marker=".", label=name)
    ax.axvline(answer_start - 0.5, color="grey", linestyle="--", label="answer starts")
    if cfg.val_task.name == "echo":
        ax.axvspan(0.5, cfg.val_task.message_length + 0.5, color="orange", alpha=0.15, label="the message")
    ax.set_xticks(range(T), labels, rotation=90, fontsize=max(3, min(8, 600 // T)))
    ax.set_ylabel("gradient norm of the answer's loss")
    ax.set_title(f"{cfg.model.name} ({cfg.model.attention} attention): how far back the answer's loss reaches")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
