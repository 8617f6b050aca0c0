"""evaluate() as it was before its bucketing became bincounts (barkbench 0.1.0, commit 11e6f65):
two Python loops over the bucket values of every batch. Kept here, unchanged but for its imports,
as the reference `make bench` measures the current evaluate against (benchmarks/bench_evaluate.py)."""

from __future__ import annotations

import torch

from barkbench.buckets import bucket_order
from barkbench.evaluate import answer_batch, answer_loss
from barkbench.tasks.common import Dataset
from barkbench.vocab import EOS


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
