"""Loss and accuracy on answer tokens: the one definition training and evaluation share."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from barkbench.tasks import PAD, Dataset, distance_bucket


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
def evaluate(model, data: Dataset, batch_size: int, device) -> dict:
    """val_loss, val_accuracy and, where the task has distances, accuracy_by_distance."""
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    bucket_hits: dict[str, list[int]] = {}  # bucket label -> [correct, count]
    for i in range(0, len(data), batch_size):
        tokens = data.tokens[i : i + batch_size].to(device)
        x, y, mask = answer_batch(tokens, data.answer_start[i : i + batch_size].to(device))
        logits, _ = model(x)
        loss_sum += answer_loss(logits, y, mask, reduction="sum").item()
        hit = logits.argmax(-1) == y
        correct += int(hit[mask].sum())
        count += int(mask.sum())
        if data.distance is not None:
            dist = data.distance[i : i + batch_size, 1 : x.shape[1] + 1].to(device)
            for d in dist[dist > 0].unique().tolist():
                at = dist == d
                tally = bucket_hits.setdefault(distance_bucket(d), [0, 0])
                tally[0] += int(hit[at].sum())
                tally[1] += int(at.sum())
    model.train(was_training)
    result = {"val_loss": loss_sum / count, "val_accuracy": correct / count}
    if data.distance is not None:
        ordered = sorted(bucket_hits.items(), key=lambda item: int(item[0].split("-")[0]))
        result["accuracy_by_distance"] = {label: hits / n for label, (hits, n) in ordered}
    return result
