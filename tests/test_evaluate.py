"""evaluate(): its bincounts against a plain count written from the figures' definitions, for
every task; and the figures' declarations, which every table and picture reads."""

from __future__ import annotations

import random

import pytest
import torch
from test_tasks import gen, random_settings

from barkbench import figures
from barkbench.evaluate import evaluate, shortest_first
from barkbench.tasks import TASKS
from barkbench.vocab import PAD


class Fixed(torch.nn.Module):
    """A model whose logits for the whole data set are given (row b's are logits[b]), fed to
    evaluate in batches of batch_size, in the order evaluate reads the rows."""

    def __init__(self, data, logits: torch.Tensor, batch_size: int):
        super().__init__()
        self.batches = iter(logits[shortest_first(data)].split(batch_size))

    def teacher_forcing(self, x, answer_start):
        return next(self.batches)[:, : x.shape[1]]


def guesses(data, size: int, seed: int) -> torch.Tensor:
    """Logits that are right at about half of the positions and random elsewhere."""
    g = gen(seed)
    nxt = torch.cat([data.tokens[:, 1:], torch.full_like(data.tokens[:, :1], PAD)], 1)
    right = torch.nn.functional.one_hot(nxt, size).float() * 4 * (torch.rand(nxt.shape, generator=g) < 0.6)[..., None]
    return right + torch.randn(*nxt.shape, size, generator=g)


def plain_count(data, logits, label) -> tuple[dict, dict]:
    """Accuracy of the content by bucket, and exact match of each unit by its bucket, one token
    at a time from the definitions (Dataset's docstring)."""
    hits, units = {}, {}
    for b in range(len(data)):
        tokens, start = data.tokens[b].tolist(), int(data.answer_start[b])
        members: dict[int, list] = {}
        for t in range(start, len(tokens)):
            token = tokens[t]
            if token == PAD or (data.given is not None and data.given[b, t]):
                continue
            hit = int(logits[b, t - 1].argmax()) == token
            value = int(data.bucket[b, t])
            if value >= 0:
                tally = hits.setdefault(label(value), [0, 0])
                tally[0], tally[1] = tally[0] + hit, tally[1] + 1
            unit = 0 if data.unit is None else int(data.unit[b, t])
            if data.unit is None or unit >= 0:  # the whole answer counts <EOS> too
                members.setdefault(unit, []).append((hit, value))
        for member in members.values():
            (value,) = {v for _, v in member if v >= 0}
            tally = units.setdefault(label(value), [0, 0])
            tally[0], tally[1] = tally[0] + all(h for h, _ in member), tally[1] + 1
    return ({k: h / n for k, (h, n) in hits.items()}, {k: h / n for k, (h, n) in units.items()})


@pytest.mark.parametrize("name", [name for name, task in TASKS.items() if task.buckets])
@pytest.mark.parametrize("seed", [0, 1])
def test_bucketed_figures_equal_a_plain_count(name, seed):
    task = TASKS[name]
    cfg = task.config.model_validate(random_settings(name, random.Random(seed)))
    data = task.make(cfg, 300, gen(seed))
    logits = guesses(data, len(task.vocab(cfg)), seed)
    by_bucket, exact_by_bucket = plain_count(data, logits, task.buckets.label)
    for batch_size in (len(data), 7):
        result = evaluate(Fixed(data, logits, batch_size), data, batch_size, "cpu", task.buckets.label)
        assert result["by_bucket"] == by_bucket
        assert result["exact_by_bucket"] == exact_by_bucket
        assert list(result["by_bucket"]) == sorted(by_bucket, key=lambda label: int(label.split("-")[0]))
        assert 0.2 < min(by_bucket.values()) and max(by_bucket.values()) < 0.95  # the guesses are neither


def test_every_figure_is_declared_once_with_its_summary_names():
    names = [f.name for f in figures.FIGURES]
    assert len(set(names)) == len(names)
    assert (
        figures.split_name("loss", "val") == "val_loss"
        and figures.split_name("bark_accuracy", "val") == "bark_accuracy"
    )
    assert figures.split_name("by_bucket", "test", "distance") == "test_accuracy_by_distance"
    assert figures.CONTENT.label("values") == "acc (values)"
    assert [f.tokens for f in figures.ACCURACIES] == ["answer", "content", "stop"]


def test_exact_match_of_a_query_counts_it_under_its_own_bucket():
    """mqar: an answer whose first query is right and second wrong files one exact query under
    the first's distance and one wrong under the second's, not the whole answer under the largest."""
    task = TASKS["mqar"]
    cfg = task.config(num_keys=8, num_values=4, num_pairs=8, num_queries=2)
    data = task.make(cfg, 1, gen(2))
    start = int(data.answer_start[0])
    first, second = (task.buckets.label(int(data.bucket[0, start + k])) for k in (1, 3))
    assert first != second  # this seed asks two pairs whose distances fall in different buckets
    logits = torch.nn.functional.one_hot(data.tokens[:, 1:], len(task.vocab(cfg))).float()
    logits[0, start + 2] = logits[0, start + 2].roll(1)  # the second value, predicted wrong
    result = evaluate(Fixed(data, logits, 1), data, 1, "cpu", task.buckets.label)
    assert result["bark_accuracy"] == 0.5 and result["exact_match"] == 0.0  # of the two values, one right
    assert result["exact_by_bucket"] == {first: 1.0, second: 0.0}
