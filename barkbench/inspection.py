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

import torch

from barkbench import plots
from barkbench.config import RunConfig
from barkbench.evaluate import answer_loss
from barkbench.models import BarkGPT
from barkbench.sample import generate
from barkbench.tasks import EOS, TASKS, VOCAB, encode, stream

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
        written.append(plots.attention_heads(layer.weights[0], labels, out_dir / f"attention-layer{n}.png", n))
        layer.keep_weights = False
    norms, names = (gpt_gradients if isinstance(model, BarkGPT) else rnn_gradients)(model, x, y, mask)
    message = cfg.val_task.message_length if cfg.val_task.name == "echo" else None
    title = f"{cfg.model.name} ({cfg.model.attention} attention): how far back the answer's loss reaches"
    written.append(plots.gradient_norms(norms, names, labels, answer_start, message, title, out_dir / "gradients.png"))
    return written
