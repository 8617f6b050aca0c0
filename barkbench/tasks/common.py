"""What every task module builds on: the Task record (what the rest of barkbench asks of a
task), the data set, named random streams, and the layouts and judges that tasks share.

torch is imported inside the functions that make tensors, so reading and validating a
config never loads it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from typing import Callable, NamedTuple, Optional

from pydantic import Field, model_validator

from barkbench.schema import Check, Section
from barkbench.vocab import ASSISTANT, BARKS, EOS, PAD, SPEAK, USER, VOCAB


class TaskSection(Section):
    """The keys every task has: how many sequences each split holds."""

    train_size: int = Field(20000, ge=1, description="sequences in the training set")
    val_size: int = Field(1000, ge=1, description="sequences in the validation set: progress and choices")
    test_size: Optional[int] = Field(
        None, ge=1, description="sequences in the test set: the final figures; default val_size"
    )

    @model_validator(mode="after")
    def _default_test_size(self):
        self.test_size = self.test_size or self.val_size
        return self


@dataclass
class Dataset:
    """A set of sequences, right-padded with <PAD>.

    tokens:       [N, T] token ids.
    answer_start: [N] index of the first answer token (the one after `Assistant:`).
    bucket:       [N, T] the value each answer token's accuracy is bucketed by (echo: how far
                  back its source lies; copy: the source length), -1 where none (<EOS>, the
                  prompt, given tokens); None for tasks that bucket nothing.
    given:        [N, T] True at the answer tokens that are given (mqar's query keys): fed to
                  the model, never predicted or counted; None where an answer holds none.
    unit:         [N, T] for exact match by bucket, the unit each bucketed token belongs to
                  within its answer (mqar: its query), -1 elsewhere; every token of a unit has
                  the same bucket value. None: the whole answer, <EOS> included, is one unit.
    """

    tokens: object
    answer_start: object
    bucket: object = None
    given: object = None
    unit: object = None

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, rows) -> Dataset:
        """The same fields for these rows (a slice or an index tensor)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Dataset(**{name: None if t is None else t[rows] for name, t in values.items()})


class Splits(NamedTuple):
    """Training data; validation data, for progress and for choosing (tuning); test data, for
    the final figures, which nothing chooses on. Each from its own random stream."""

    train: Dataset
    val: Dataset
    test: Dataset


@dataclass(frozen=True)
class Buckets:
    """How a task's results are bucketed: accuracy_by_<name> in summary.json.

    Every label reads "low-high" (whole numbers), so labels sort by their first number and
    line up across runs with different settings."""

    name: str  # "distance", "length"
    label: Callable[[int], str]  # a value's bucket
    values: Callable  # (task config) -> the values its data can hold (which buckets it covers)
    keys: tuple[str, ...]  # the task keys that set those values: a study sweeping them sweeps the x-axis
    axis: str  # what the values are, for a picture's axis


@dataclass(frozen=True)
class Task:
    """Everything the rest of barkbench asks of a task. Each task module makes one, TASK."""

    config: type[TaskSection]  # its `task:` section: keys, defaults, limits
    make: Callable  # (task config, count, torch.Generator) -> Dataset
    floor: Callable  # (task config) -> the Bayes floor: the lowest loss any model can reach, nats/answer token
    longest: Callable  # (task config) -> the longest sequence it makes, in tokens
    checks: tuple[Check, ...] = ()  # checks that relate its keys
    # (task config) -> its words: the bark vocabulary, then any of its own; every model sizes
    # its embedding and head from this
    vocab: Callable = lambda cfg: VOCAB
    chance: Callable = lambda cfg: 1 / len(BARKS)  # (task config) -> the accuracy of guessing the content
    content: str = "barks"  # what the answer's content tokens are, for labels: "acc (barks)"
    unit: str = "answer"  # what exact match by bucket counts one of: a whole answer, or a query
    given: str = ""  # what its answers' given tokens are ("the query keys"), if they hold any
    buckets: Buckets | None = None
    # (task config, prompts, answers, expected answers) -> (a verdict per sample, their summary),
    # for tasks whose samples can be right or wrong; the summary's keys go into summary.json.
    judge: Callable | None = None
    sample_figures: dict[str, str] = field(default_factory=dict)  # summary keys of judge worth a picture: label
    readable: Callable = lambda cfg: cfg  # settings for one example short enough to label token by token
    message: Callable = lambda cfg, tokens, start: None  # (first, last) of the prompt tokens the answer needs
    capacity_keys: tuple[str, ...] = ()  # its keys that set how much there is to remember (memory_map.png)


def stream(seed: int, name: str):
    """An independent random stream derived from the seed and a name ("train", "val", ...)."""
    import torch

    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


# ---- `User: speak Assistant:` then n barks and <EOS> (barks, cycle) ---------------------------


def speak_sequences(cfg, count: int, gen, barks) -> Dataset:
    """`User: speak Assistant: <n barks> <EOS>` with n uniform in [cfg.min_barks, cfg.max_barks]
    and the barks from barks(count, max_n, gen), a [count, max_n] matrix of bark ids."""
    import torch

    n = torch.randint(cfg.min_barks, cfg.max_barks + 1, (count,), generator=gen)
    max_n = cfg.max_barks
    barks = barks(count, max_n, gen)
    cols = torch.arange(max_n + 4)
    tokens = torch.full((count, max_n + 4), PAD, dtype=torch.long)
    tokens[:, :3] = torch.tensor([USER, SPEAK, ASSISTANT])
    body = cols[None, 3 : 3 + max_n] < 3 + n[:, None]
    tokens[:, 3 : 3 + max_n] = torch.where(body, barks, PAD)
    tokens[torch.arange(count), 3 + n] = EOS
    return Dataset(tokens=tokens, answer_start=torch.full((count,), 3, dtype=torch.long))


def stop_entropy(min_n: int, max_n: int, bark_entropy: float) -> float:
    """Expected nats per answer token when n ~ U[min_n, max_n] and each bark costs bark_entropy.

    After k barks the best model knows k. While k < min_n it must bark; from then on the
    answer stops with probability 1/(max_n - k + 1) (the remaining choices are equally
    likely), so the next token costs the entropy of that stop-or-bark decision.
    """
    total = 0.0
    span = max_n - min_n + 1
    for k in range(max_n + 1):
        reach = min(1.0, (max_n - k + 1) / span)  # P(n >= k): the answer gets this far
        if k < min_n:
            total += reach * bark_entropy
        elif k < max_n:
            p = 1.0 / (max_n - k + 1)
            total += reach * (-p * math.log(p) - (1 - p) * math.log(1 - p) + (1 - p) * bark_entropy)
    return total / ((min_n + max_n) / 2 + 1)  # tokens per answer: E[n] barks plus <EOS>


def exact_answers(cfg, prompts, answers, expected) -> tuple[list[dict], dict]:
    """The judge of tasks whose answer the prompt determines: is each sample the expected answer?
    (Nothing to judge when the prompts are not the task's own, so the answers are unknown.)"""
    if any(e is None for e in expected):
        return [{} for _ in answers], {}
    verdicts = [{"correct": a == e} for a, e in zip(answers, expected)]
    return verdicts, {"sample_accuracy": sum(v["correct"] for v in verdicts) / max(len(verdicts), 1)}
