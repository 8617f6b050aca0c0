"""The figures barkbench measures, each declared once: its name, its column header, what it
counts in words, its digits and which answer tokens it counts. evaluate() computes the
accuracies from these declarations; the terminal tables, report.md, the pictures and the
findings label every figure from here.

A label's `{content}` is what the task's answer holds (Task.content: "barks" for echo,
"values" for mqar). The JSON key stays `bark_accuracy` whatever the task: scripts rely on it.

Which answer tokens a figure counts (never <PAD>, never a *given* token such as mqar's query
keys, which the model is fed and never asked to predict):
  answer   every answer token, <EOS> included
  content  the answer's content: every answer token but <EOS>
  stop     <EOS> alone: does the model stop where the answer does?

No torch here: the report reads these without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str  # evaluate's key; summary.json's under split_name
    header: str  # a table's column
    words: str  # what it is and counts, a noun phrase for a table's row, a picture's axis or a sentence
    digits: int
    tokens: str | None = None  # for an accuracy: the answer tokens it counts (answer, content, stop)

    def label(self, content: str = "barks") -> str:
        return self.header.format(content=content)

    def said(self, content: str = "barks", unit: str = "answer") -> str:
        return self.words.format(content=content, unit=unit)


LOSS = Figure("loss", "loss", "loss (nats per answer token, <EOS> included)", 3)
EXCESS = Figure("excess_loss", "excess loss", "excess loss above the task's floor", 3)
ACCURACY = Figure("accuracy", "acc (all)", "accuracy of every answer token, <EOS> included", 3, "answer")
CONTENT = Figure("bark_accuracy", "acc ({content})", "accuracy of the answer's {content}", 3, "content")
STOP = Figure("stop_accuracy", "stop acc", "accuracy of <EOS> where the answer ends", 3, "stop")
EXACT = Figure("exact_match", "exact match", "exact match of whole answers, to <EOS>", 3)
FIGURES = (LOSS, EXCESS, ACCURACY, CONTENT, STOP, EXACT)
ACCURACIES = tuple(f for f in FIGURES if f.tokens)

# By bucket (echo: distance): the content's accuracy, and exact match of each unit the task
# names (a whole answer; an mqar query) under that unit's own bucket.
BY_BUCKET = Figure("by_bucket", "acc ({content})", "accuracy of the answer's {content}", 2, "content")
EXACT_BY_BUCKET = Figure("exact_by_bucket", "exact match", "exact match of each {unit}", 2)


def split_name(name: str, split: str, bucket: str | None = None) -> str:
    """A figure's summary.json name on a split: val_loss, val_accuracy and the unprefixed rest
    (bark_accuracy, accuracy_by_distance) for validation; test_ before every one for test."""
    name = {"by_bucket": f"accuracy_by_{bucket}", "exact_by_bucket": f"exact_match_by_{bucket}"}.get(name, name)
    if split == "val" and name not in ("loss", "accuracy"):
        return name
    return f"{split}_{name}"


def split_figures(figures: dict, split: str, bucket: str | None) -> dict:
    """evaluate()'s figures under their summary.json names, for the validation or test split."""
    return {split_name(name, split, bucket): value for name, value in figures.items()}


def on_test(figure: Figure) -> str:
    """A figure's summary.json name on the test split: what the studies report."""
    return split_name(figure.name, "test")
