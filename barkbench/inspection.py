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

from barkbench import inspection_plots as plots
from barkbench.evaluate import answer_loss
from barkbench.sample import generate
from barkbench.tasks import stream, task_of
from barkbench.vocab import EOS, encode


def example(cfg, model, prompt: str | None) -> tuple[list[int], int]:
    """The tokens to inspect and where the answer starts: the given prompt with the model's own
    greedy answer, or one sequence of the run's validation task (its settings made short enough
    to label every token) with its true answer."""
    if prompt:
        ids = encode(prompt, cfg.vocab)
        return ids + generate(model, ids, 1, cfg.sample.max_new_tokens, temperature=0)[0], len(ids)
    task = task_of(cfg.val_task)
    settings = task.readable(cfg.val_task)
    data = task.make(settings, 1, stream(cfg.seed, "inspect"))
    tokens = data.tokens[0].tolist()
    return tokens[: tokens.index(EOS) + 1], int(data.answer_start[0])


def gradient_norms(model, tokens: list[int], answer_start: int) -> dict[str, torch.Tensor]:
    """{line name: the gradient norm of the answer's loss at the model's state, per position}."""
    x, y = torch.tensor([tokens[:-1]]), torch.tensor([tokens[1:]])
    mask = torch.arange(1, len(tokens))[None] >= answer_start
    logits, read = model.gradient_states(x, torch.tensor([answer_start]))
    answer_loss(logits, y, mask).backward()
    return read()


def draw_pictures(cfg, model, prompt: str | None, out_dir: Path, name: str) -> list[Path]:
    """Draw the pictures for a loaded model; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, answer_start = example(cfg, model, prompt)
    labels = [cfg.vocab[t] for t in tokens[:-1]]
    x = torch.tensor([tokens[:-1]])
    model.eval()

    written = []
    for n, layer in enumerate(model.attention_layers(), 1):
        layer.keep_weights = True
        with torch.no_grad():
            model.teacher_forcing(x, torch.tensor([answer_start]))
        written.append(plots.attention_heads(layer.weights[0], labels, out_dir / f"attention-layer{n}.png", n))
        layer.keep_weights = False
    norms = gradient_norms(model, tokens, answer_start)
    message = None if prompt else task_of(cfg.val_task).message(cfg.val_task, tokens, answer_start)
    title = f"{cfg.model.name}: how far back the answer's loss reaches"
    written.append(plots.gradient_norms(norms, labels, answer_start, message, title, out_dir / "gradients.png"))
    return written
