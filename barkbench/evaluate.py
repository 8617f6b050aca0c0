"""Loss and accuracy on answer tokens: the one definition training, evaluation and the
benchmark share.

evaluate() reports, over a data set:
  loss           cross-entropy per answer token (nats), <EOS> included, as the floor counts it
  accuracy       share of answer tokens predicted right, <EOS> included
  bark_accuracy  the same over the answer's barks alone (what the buckets count)
  stop_accuracy  the same over <EOS> alone: does the model stop where the answer does?
  exact_match    share of answers right from the first token to <EOS>
  by_bucket      accuracy of the barks in each bucket (echo: distance), for tasks with buckets
  exact_by_bucket  exact match of the answers in each bucket (a sequence's bucket: its barks')
split_figures() names them as summary.json does, for the validation or the test split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from barkbench.buckets import bucket_order
from barkbench.tasks.common import Dataset
from barkbench.vocab import EOS, PAD


def answer_batch(tokens: torch.Tensor, answer_start: torch.Tensor):
    """Inputs, targets and the answer mask for a batch, trimmed to its longest sequence.

    The target at position t is token t+1; it counts when it is an answer token (at or after
    answer_start; <EOS> included) and never when it is <PAD>.
    """
    length = int((tokens != PAD).sum(1).max())
    tokens = tokens[:, :length]
    x, y = tokens[:, :-1], tokens[:, 1:]
    target_pos = torch.arange(1, length, device=tokens.device)
    mask = (target_pos[None, :] >= answer_start[:, None]) & (y != PAD)
    return x, y, mask


def answer_loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the answer tokens of a batch: their mean (nats per answer token), or
    with reduction="sum" their total, for averaging over many batches."""
    return F.cross_entropy(logits[mask], y[mask], reduction=reduction)


@torch.no_grad()
def evaluate(model, data: Dataset, batch_size: int, device, bucket_label=None) -> dict:
    """The figures above over a data set; by_bucket when the data have buckets and a labeller."""
    was_training = model.training
    model.eval()
    loss_sum = 0.0
    counts = torch.zeros(7, dtype=torch.long)  # right/all for answer tokens, barks, <EOS>; exact answers
    bucket_hits: dict[str, list[int]] = {}  # bucket label -> [right, all] over barks
    bucket_exact: dict[str, list[int]] = {}  # bucket label -> [right, all] over answers
    for i in range(0, len(data), batch_size):
        tokens, start = data.tokens[i : i + batch_size].to(device), data.answer_start[i : i + batch_size].to(device)
        x, y, mask = answer_batch(tokens, start)
        logits = model.teacher_forcing(x, start)
        loss_sum += answer_loss(logits, y, mask, reduction="sum").item()
        hit = logits.argmax(-1) == y
        stop = mask & (y == EOS)
        bark = mask & ~stop
        exact = (hit | ~mask).all(1)
        counts += torch.stack(
            [
                (hit & mask).sum(),
                mask.sum(),
                (hit & bark).sum(),
                bark.sum(),
                (hit & stop).sum(),
                stop.sum(),
                exact.sum(),
            ]
        ).cpu()
        if data.bucket is not None and bucket_label is not None:
            values = data.bucket[i : i + batch_size, 1 : x.shape[1] + 1].to(device)
            for v in values[values > 0].unique().tolist():
                at = values == v
                tally = bucket_hits.setdefault(bucket_label(v), [0, 0])
                tally[0] += int(hit[at].sum())
                tally[1] += int(at.sum())
            row_value = values.amax(1)  # every bark of an answer has its sequence's value
            for v in row_value[row_value > 0].unique().tolist():
                tally = bucket_exact.setdefault(bucket_label(v), [0, 0])
                tally[0] += int(exact[row_value == v].sum())
                tally[1] += int((row_value == v).sum())
    model.train(was_training)
    right, answer, bark_right, barks, stop_right, stops, exact = counts.tolist()
    result = {
        "loss": loss_sum / answer,
        "accuracy": right / answer,
        "bark_accuracy": bark_right / max(barks, 1),
        "stop_accuracy": stop_right / max(stops, 1),
        "exact_match": exact / len(data),
    }
    for key, tallies in (("by_bucket", bucket_hits), ("exact_by_bucket", bucket_exact)):
        if tallies:
            ordered = sorted(tallies.items(), key=lambda item: bucket_order(item[0]))
            result[key] = {label: hits / n for label, (hits, n) in ordered}
    return result


def split_figures(figures: dict, split: str, bucket_name: str | None) -> dict:
    """evaluate()'s figures under their summary.json names: val_loss, val_accuracy and the
    unprefixed rest (accuracy_by_distance, exact_match) for the validation split; test_ before
    every one for the test split."""
    first = {"loss": f"{split}_loss", "accuracy": f"{split}_accuracy"}
    rest = "" if split == "val" else f"{split}_"
    named = {}
    bucketed = {"by_bucket": f"accuracy_by_{bucket_name}", "exact_by_bucket": f"exact_match_by_{bucket_name}"}
    for key, value in figures.items():
        name = bucketed.get(key, key)
        named[first.get(key, rest + name)] = value
    return named
