"""`barkbench inspect`: pictures of what a trained model looks at, and what it can still learn from.

attention-layer<N>.png  one panel per head: for each position (row), how much it attends to
                        each earlier position (column), with the tokens on both axes.
alignment-layer<N>.png  encoder-decoders: for each answer token (row), how much the decoder
                        looks at each source token (column).
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
from barkbench.evaluate import answer_batch, answer_loss
from barkbench.sample import generate
from barkbench.tasks import stream, task_of
from barkbench.vocab import EOS, encode


def example(cfg, model, prompt: str | None) -> tuple[list[int], int, list[bool]]:
    """The tokens to inspect, where the answer starts and which tokens are given (never part of
    the answer's loss): the given prompt with the model's own greedy answer, or one sequence of
    the run's validation task (its settings made short enough to label every token) with its
    true answer."""
    if prompt:
        ids = encode(prompt, cfg.vocab)
        tokens = ids + generate(model, ids, 1, cfg.sample.max_new_tokens, temperature=0)[0]
        return tokens, len(ids), [False] * len(tokens)
    task = task_of(cfg.val_task)
    settings = task.readable(cfg.val_task)
    data = task.make(settings, 1, stream(cfg.seed, "inspect"))
    tokens = data.tokens[0].tolist()
    end = tokens.index(EOS) + 1
    given = data.given[0, :end].tolist() if data.given is not None else [False] * end
    return tokens[:end], int(data.answer_start[0]), given


def gradient_norms(model, tokens: list[int], answer_start: int, given: list[bool]) -> dict[str, torch.Tensor]:
    """{line name: the gradient norm of the answer's loss at the model's state, per position}."""
    x, y, mask = answer_batch(torch.tensor([tokens]), torch.tensor([answer_start]), torch.tensor([given]))
    logits, read = model.gradient_states(x, torch.tensor([answer_start]))
    answer_loss(logits, y, mask).backward()
    return read()


def kept_weights(model, layers: list, x: torch.Tensor, answer_start: int) -> list[torch.Tensor]:
    """The attention weights [heads, queries, keys] of these layers for one teacher-forced pass."""
    for layer in layers:
        layer.keep_weights = True
    with torch.no_grad():
        model.teacher_forcing(x, torch.tensor([answer_start]))
    for layer in layers:
        layer.keep_weights = False
    return [layer.weights[0] for layer in layers]


def draw_pictures(cfg, model, prompt: str | None, out_dir: Path, name: str) -> list[Path]:
    """Draw the pictures for a loaded model; returns the files written."""
    tokens, start, given = example(cfg, model, prompt)  # a prompt that will not do: said before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    words = [cfg.vocab[t] for t in tokens]
    labels = words[:-1]  # the inputs: every token but the last
    message = None if prompt else task_of(cfg.val_task).message(cfg.val_task, tokens, start)
    title = f"{name} ({cfg.model.name} on {cfg.task.name})"
    x = torch.tensor([tokens[:-1]])
    model.eval()

    written = []
    by_length = {len(labels): labels, start: words[:start], len(labels) - start + 1: labels[start - 1 :]}
    for n, weights in enumerate(kept_weights(model, model.attention_layers(), x, start), 1):
        rows = by_length.get(weights.shape[-1], labels)  # the full sequence, or an encoder-decoder's source or target
        path = out_dir / f"attention-layer{n}.png"
        shown_start = start if len(rows) == len(labels) else 0
        written.append(
            plots.attention_map(
                weights, rows, shown_start, message if shown_start else None, path, f"{title}, layer {n}"
            )
        )
    for n, weights in enumerate(kept_weights(model, model.alignment_layers(), x, start), 1):
        path = out_dir / f"alignment-layer{n}.png"
        written.append(plots.alignment_map(weights, words[start:], words[:start], message, path, f"{title}, layer {n}"))
    norms = gradient_norms(model, tokens, start, given)
    written.append(plots.gradient_norms(norms, labels, start, message, title, out_dir / "gradients.png"))
    return written
