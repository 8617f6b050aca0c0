"""Sampling from a model: temperature, top-k, greedy at temperature 0, stop at <EOS>; and the
samples a run shows at the end, judged where the task can judge them."""

from __future__ import annotations

import torch

from barkbench.errors import BarkError
from barkbench.tasks import sample_prompts, task_of
from barkbench.vocab import EOS, PAD, decode, encode


def pick(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """One token per row of [B, vocab] logits; never <PAD>, which only fills batches."""
    logits = logits.float().cpu().clone()  # the generator lives on the CPU; leave the caller's logits be
    logits[:, PAD] = float("-inf")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(
    model,
    prompt: list[int],
    num_samples: int = 1,
    max_new_tokens: int = 200,
    temperature: float = 0.7,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    given: list[int | None] = (),
) -> list[list[int]]:
    """num_samples continuations of one prompt, each cut after its <EOS> (kept).

    given[i], where it is a token, is put in place as the i-th new token instead of one the model
    picks (mqar's query keys: the task gives them, the model answers them).

    With use_cache the model carries its state (hidden state or key/value cache), so each new
    token costs one position; without it every step re-runs teacher forcing over the whole
    sequence, which is the reference the cache is measured and tested against.
    """
    room = model.room(len(prompt))
    if room is not None and room < 0:
        raise BarkError(
            f"the prompt has {len(prompt)} tokens but the model's context_length is {model.context_length}; "
            "shorten the prompt"
        )
    if room is not None:
        max_new_tokens = min(max_new_tokens, room)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    seq = torch.tensor([prompt] * num_samples, device=device)
    start = torch.full((num_samples,), len(prompt), device=device)
    done = torch.zeros(num_samples, dtype=torch.bool, device=device)
    logits, state = model.prefill(seq)
    for i in range(max_new_tokens):
        token = pick(logits, temperature, top_k, generator).to(device)
        if i < len(given) and given[i] is not None:
            token = torch.full_like(token, given[i])
        token = torch.where(done, PAD, token)
        seq = torch.cat([seq, token[:, None]], 1)
        done |= token == EOS
        if done.all() or i == max_new_tokens - 1:
            break
        if use_cache:
            logits, state = model.decode(token, state)
        else:
            logits = model.teacher_forcing(seq, start)[:, -1]
    model.train(was_training)
    out = []
    for row in seq[:, len(prompt) :].tolist():
        out.append(row[: row.index(EOS) + 1] if EOS in row else row)
    return out


def draw_samples(model, task_cfg, sc, seed: int, generator: torch.Generator) -> tuple[list[dict], dict]:
    """Samples as a run shows them: one row each (prompt, text, stopped, the positions in text
    of the words the task gave, and the task's verdict: the expected answer and whether it is
    right, where the task has one) and the verdicts' summary.

    With sample.prompt set every sample continues it, and nothing is given; otherwise each sample
    gets a prompt of the task of its own (the same prompt for all where the task has only one,
    as barks does), with the answer's given tokens put in place."""
    task = task_of(task_cfg)
    vocab = task.vocab(task_cfg)
    if sc.prompt:
        prompts = [(encode(sc.prompt, vocab), None, [])] * sc.num_samples
    else:
        prompts = sample_prompts(task_cfg, sc.num_samples, seed)
    args = (sc.max_new_tokens, sc.temperature, sc.top_k, generator)
    if len({tuple(p) for p, _, _ in prompts}) == 1:  # one prompt: sample all at once as a batch
        prompt, _, given = prompts[0]
        answers = generate(model, prompt, len(prompts), *args, given=given) if prompts else []
    else:
        answers = [generate(model, prompt, 1, *args, given=given)[0] for prompt, _, given in prompts]
    expected = [e for _, e, _ in prompts]
    if task.judge is not None:
        verdicts, summary = task.judge(task_cfg, [p for p, _, _ in prompts], answers, expected)
    else:
        verdicts, summary = [{} for _ in answers], {}
    rows = []
    for (prompt, truth, given), answer, verdict in zip(prompts, answers, verdicts):
        stopped = answer[-1:] == [EOS]
        text = decode(answer[:-1] if stopped else answer, vocab)
        row = {"prompt": decode(prompt, vocab), "text": text, "stopped": stopped}
        row |= (
            {"given": [i for i, g in enumerate(given[: len(answer)]) if g is not None]}
            if any(g is not None for g in given)
            else {}
        )
        row |= {"expected": decode(truth[:-1], vocab)} if "correct" in verdict else {}
        rows.append(row | verdict)
    return rows, summary
