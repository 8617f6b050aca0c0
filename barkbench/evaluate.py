"""Loss and accuracy on answer tokens: the one definition training, evaluation and the
benchmark share.

evaluate() reports, over a data set, the figures barkbench/figures.py declares: the loss
(nats per answer token, <EOS> included, as the floor counts it), the accuracies over the tokens
each declaration names, exact match of whole answers, and for tasks with buckets the content's
accuracy by bucket and exact match of each unit (a whole answer; an mqar query) by its bucket.
Given tokens (mqar's query keys) are fed to the model and never counted. Bucketing is a few
bincounts per batch: no Python loop over bucket values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from barkbench.buckets import bucket_order
from barkbench.figures import ACCURACIES, BY_BUCKET, EXACT, EXACT_BY_BUCKET, LOSS
from barkbench.tasks.common import Dataset
from barkbench.vocab import EOS, PAD


def answer_batch(tokens: torch.Tensor, answer_start: torch.Tensor, given: torch.Tensor | None = None):
    """Inputs, targets and the answer mask for a batch, trimmed to its longest sequence.

    The target at position t is token t+1; it counts when it is an answer token (at or after
    answer_start; <EOS> included), and never when it is <PAD> or a given token.
    """
    length = int((tokens != PAD).sum(1).max())
    tokens = tokens[:, :length]
    x, y = tokens[:, :-1], tokens[:, 1:]
    target_pos = torch.arange(1, length, device=tokens.device)
    mask = (target_pos[None, :] >= answer_start[:, None]) & (y != PAD)
    if given is not None:
        mask &= ~given[:, 1:length]
    return x, y, mask


def to_batch(part: Dataset, device):
    """answer_batch of some rows of a data set (data[rows]), on the device: (x, y, mask, answer_start)."""
    start = part.answer_start.to(device)
    given = None if part.given is None else part.given.to(device)
    return (*answer_batch(part.tokens.to(device), start, given), start)


def answer_loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the answer tokens of a batch: their mean (nats per answer token), or
    with reduction="sum" their total, for averaging over many batches."""
    return F.cross_entropy(logits[mask], y[mask], reduction=reduction)


def counted(y: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The answer tokens each kind of accuracy counts (figures.py): answer, content, stop."""
    stop = mask & (y == EOS)
    return {"answer": mask, "content": mask & ~stop, "stop": stop}


class Bucketing:
    """Tallies by bucket over a data set's batches. Each bucket value maps to its label's index
    through one lookup table, so a batch is tallied by bincount, whatever its buckets."""

    def __init__(self, data: Dataset, label):
        values = data.bucket[data.bucket >= 0].unique()
        labels = sorted({label(v) for v in values.tolist()}, key=bucket_order)
        self.labels = labels
        self.lookup = torch.full((int(values.max()) + 1 if len(values) else 1,), -1, dtype=torch.long)
        self.lookup[values] = torch.tensor([labels.index(label(v)) for v in values.tolist()], dtype=torch.long)
        self.units = 1 if data.unit is None else int(data.unit.max()) + 1  # per answer, at most
        self.tally = torch.zeros(4, len(labels), dtype=torch.long)  # right, all (content); exact, all (units)

    def add(self, part: Dataset, hit: torch.Tensor, mask: torch.Tensor, content: torch.Tensor) -> None:
        T = hit.shape[1]
        values = part.bucket[:, 1 : T + 1].to(hit.device)  # the bucket of the target at each position
        lookup = self.lookup.to(hit.device)
        n = len(self.labels)
        at = content & (values >= 0)
        b = lookup[values[at]]
        right, total = torch.bincount(b[hit[at]], minlength=n), torch.bincount(b, minlength=n)
        # Exact match by unit: a unit is every token of the answer it counts (the whole answer,
        # <EOS> included, by default), exact when none is wrong, filed under its tokens' bucket.
        if part.unit is None:
            member, unit = mask, torch.zeros_like(values)
        else:
            unit = part.unit[:, 1 : T + 1].to(hit.device)
            member = content & (unit >= 0)
        rows = torch.arange(len(hit), device=hit.device)[:, None].expand_as(unit)
        uid = rows * self.units + unit
        wrong = torch.bincount(uid[member & ~hit], minlength=len(hit) * self.units)
        seen = torch.bincount(uid[member], minlength=len(hit) * self.units) > 0
        bucket_of = torch.full((len(hit) * self.units,), -1, dtype=torch.long, device=hit.device)
        bucket_of[uid[at & member]] = lookup[values[at & member]]
        filed = seen & (bucket_of >= 0)
        exact = torch.bincount(bucket_of[filed & (wrong == 0)], minlength=n)
        units = torch.bincount(bucket_of[filed], minlength=n)
        self.tally += torch.stack([right, total, exact, units]).cpu()

    def result(self) -> dict:
        right, total, exact, units = self.tally.tolist()
        shares = {}
        for figure, hits, count in ((BY_BUCKET, right, total), (EXACT_BY_BUCKET, exact, units)):
            shares[figure.name] = {label: h / c for label, h, c in zip(self.labels, hits, count) if c}
        return shares


def shortest_first(data: Dataset) -> torch.Tensor:
    """The order evaluate() reads a data set in: shortest sequences first, so that each batch is
    trimmed to sequences of about its own length. Where lengths vary (echo tested on gaps 0 to
    256) that halves the work, and no figure but the loss's last digits depends on the order."""
    return (data.tokens != PAD).sum(1).argsort(stable=True)


@torch.no_grad()
def evaluate(model, data: Dataset, batch_size: int, device, bucket_label=None) -> dict:
    """The figures above over a data set; by bucket when the data have buckets and a labeller."""
    was_training = model.training
    model.eval()
    loss_sum = 0.0
    counts = torch.zeros(
        2 + 2 * len(ACCURACIES), dtype=torch.long
    )  # answer tokens, exact answers, right/all per accuracy
    buckets = Bucketing(data, bucket_label) if data.bucket is not None and bucket_label is not None else None
    order = shortest_first(data)
    for i in range(0, len(data), batch_size):
        part = data[order[i : i + batch_size]]
        x, y, mask, start = to_batch(part, device)
        logits = model.teacher_forcing(x, start)
        loss_sum += answer_loss(logits, y, mask, reduction="sum").item()
        hit = logits.argmax(-1) == y
        tokens = counted(y, mask)
        tallies = [t for f in ACCURACIES for t in ((hit & tokens[f.tokens]).sum(), tokens[f.tokens].sum())]
        counts += torch.stack([mask.sum(), (hit | ~mask).all(1).sum(), *tallies]).cpu()
        if buckets is not None:
            buckets.add(part, hit, mask, tokens["content"])
    model.train(was_training)
    answer, exact, *tallies = counts.tolist()
    result = {LOSS.name: loss_sum / answer}
    for f, right, total in zip(ACCURACIES, tallies[::2], tallies[1::2]):
        result[f.name] = right / max(total, 1)
    result[EXACT.name] = exact / len(data)
    if buckets is not None:
        result |= {name: shares for name, shares in buckets.result().items() if shares}
    return result
