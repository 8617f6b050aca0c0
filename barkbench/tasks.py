"""The bark language: its vocabulary, the tasks that generate it, and their Bayes floors.

Every sequence is a prompt ending in `Assistant:` followed by an answer ending in `<EOS>`.
A data set is one right-padded tensor: because every model is causal, padding at the end
never changes what the model computes for the real tokens before it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable

import torch

from barkbench.errors import BarkError

VOCAB = ["<PAD>", "<EOS>", "woof", "arf", "ruff", "grrr", "User:", "Assistant:", "speak"]
STOI = {word: i for i, word in enumerate(VOCAB)}
PAD, EOS, USER, ASSISTANT, SPEAK = (STOI[w] for w in ("<PAD>", "<EOS>", "User:", "Assistant:", "speak"))
BARKS = [STOI[w] for w in ("woof", "arf", "ruff", "grrr")]  # also the order of the cycle
SPEAK_PROMPT = "User: speak Assistant:"


def encode(text: str) -> list[int]:
    unknown = [w for w in text.split() if w not in STOI]
    if unknown:
        raise BarkError(f"the word {unknown[0]!r} is not in the bark vocabulary; use only: {' '.join(VOCAB)}")
    return [STOI[w] for w in text.split()]


def decode(ids) -> str:
    return " ".join(VOCAB[int(i)] for i in ids)


@dataclass
class Dataset:
    """A set of sequences, right-padded with <PAD>.

    tokens:       [N, T] token ids.
    answer_start: [N] index of the first answer token (the one after `Assistant:`).
    distance:     [N, T] for echo, how far back each token's source lies (-1 where it has
                  none, such as <EOS>); None for the other tasks.
    """

    tokens: torch.Tensor
    answer_start: torch.Tensor
    distance: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.tokens.shape[0]


def stream(seed: int, name: str) -> torch.Generator:
    """An independent random stream derived from the seed and a name ("train", "val", ...)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


# ---- barks and cycle: `User: speak Assistant:` then n barks and <EOS> --------------------


def _speak_sequences(barks: torch.Tensor, n: torch.Tensor) -> Dataset:
    """Lay out `User: speak Assistant: <n barks> <EOS>` from a [N, max_n] bark matrix."""
    count, max_n = barks.shape
    cols = torch.arange(max_n + 4)
    tokens = torch.full((count, max_n + 4), PAD, dtype=torch.long)
    tokens[:, :3] = torch.tensor([USER, SPEAK, ASSISTANT])
    body = cols[None, 3 : 3 + max_n] < 3 + n[:, None]
    tokens[:, 3 : 3 + max_n] = torch.where(body, barks, PAD)
    tokens[torch.arange(count), 3 + n] = EOS
    return Dataset(tokens=tokens, answer_start=torch.full((count,), 3, dtype=torch.long))


def make_barks(cfg, count: int, gen: torch.Generator) -> Dataset:
    n = torch.randint(cfg.min_barks, cfg.max_barks + 1, (count,), generator=gen)
    choice = torch.randint(0, 4, (count, cfg.max_barks), generator=gen)
    return _speak_sequences(torch.tensor(BARKS)[choice], n)


def make_cycle(cfg, count: int, gen: torch.Generator) -> Dataset:
    n = torch.randint(cfg.min_barks, cfg.max_barks + 1, (count,), generator=gen)
    cycle = torch.tensor(BARKS)[torch.arange(cfg.max_barks) % 4]
    return _speak_sequences(cycle.expand(count, -1), n)


def _stop_entropy(min_n: int, max_n: int, bark_entropy: float) -> float:
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


def floor_barks(cfg) -> float:
    return _stop_entropy(cfg.min_barks, cfg.max_barks, math.log(4))


def floor_cycle(cfg) -> float:
    return _stop_entropy(cfg.min_barks, cfg.max_barks, 0.0)


# ---- echo: `User: <m barks> speak <g barks> Assistant:` then the m barks and <EOS> -------


def make_echo(cfg, count: int, gen: torch.Generator) -> Dataset:
    m = cfg.message_length
    gap = torch.randint(cfg.min_gap, cfg.max_gap + 1, (count,), generator=gen)
    message = torch.tensor(BARKS)[torch.randint(0, 4, (count, m), generator=gen)]
    noise = torch.tensor(BARKS)[torch.randint(0, 4, (count, max(cfg.max_gap, 1)), generator=gen)]

    width = 2 * m + cfg.max_gap + 4
    cols = torch.arange(width)[None, :]
    g = gap[:, None]
    assistant = m + 2 + g  # column of `Assistant:`
    tokens = torch.full((count, width), PAD, dtype=torch.long)
    tokens[:, 0] = USER
    tokens[:, 1 : m + 1] = message
    tokens[:, m + 1] = SPEAK
    in_gap = (cols >= m + 2) & (cols < assistant)
    noise_at = (cols - m - 2).clamp(0, noise.shape[1] - 1).expand(count, -1)  # gather does not broadcast
    tokens = torch.where(in_gap, noise.gather(1, noise_at), tokens)
    tokens = torch.where(cols == assistant, ASSISTANT, tokens)
    in_answer = (cols > assistant) & (cols <= assistant + m)
    tokens = torch.where(in_answer, message.gather(1, (cols - assistant - 1).clamp(0, m - 1)), tokens)
    tokens = torch.where(cols == assistant + m + 1, EOS, tokens)

    # Answer token j copies message token j, which sits m + g + 2 positions earlier.
    distance = torch.where(in_answer, m + g + 2, -1)
    return Dataset(tokens=tokens, answer_start=assistant[:, 0] + 1, distance=distance)


def floor_echo(cfg) -> float:
    return 0.0  # the answer is fully determined by the prompt


@dataclass(frozen=True)
class Task:
    make: Callable  # (task config, count, generator) -> Dataset
    floor: Callable  # (task config) -> nats per answer token


TASKS: dict[str, Task] = {
    "barks": Task(make_barks, floor_barks),
    "cycle": Task(make_cycle, floor_cycle),
    "echo": Task(make_echo, floor_echo),
}


def make_splits(cfg, seed: int, val_cfg=None) -> tuple[Dataset, Dataset]:
    """The training and validation sets for a task config; the same seed gives the same data.

    val_cfg, when given, is the task config the validation set is drawn from instead.
    """
    task = TASKS[cfg.name]
    val_cfg = val_cfg or cfg
    train = task.make(cfg, cfg.train_size, stream(seed, "train"))
    val = TASKS[val_cfg.name].make(val_cfg, val_cfg.val_size, stream(seed, "val"))
    return train, val


def sample_prompts(cfg, count: int, seed: int) -> list[str]:
    """Prompts for samples at the end of training: the task's own prompt, or for echo a fresh
    message and gap for each sample (drawn from their own stream, so training data is untouched)."""
    if cfg.name != "echo":
        return [SPEAK_PROMPT] * count
    data = make_echo(cfg, count, stream(seed, "samples"))
    return [decode(row[:start]) for row, start in zip(data.tokens, data.answer_start.tolist())]


def distance_bucket(d: int) -> str:
    """Powers-of-two buckets ("8-15", "16-31", ...): the same labels whatever the gap range, so
    runs with different gaps line up in a comparison, and fine where RNNs start to forget."""
    low = 1 << (max(int(d), 1).bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def longest_sequence(cfg) -> int:
    """The longest sequence a task config can produce, in tokens."""
    if cfg.name == "echo":
        return 2 * cfg.message_length + cfg.max_gap + 4
    return cfg.max_barks + 4


def judge_samples(cfg, prompts: list[list[int]], answers: list[list[int]]) -> tuple[list[dict], dict]:
    """Per-sample verdicts and their summary, for tasks where a sample can be right or wrong.

    cycle: the two ways the BarkRNN can fail: not stopping inside the trained length range
    (`stop_rate` is the share that do), and losing the cycle (`cycle_adherence` is the share
    of generated barks that are the right bark for their position).
    echo: whether each answer reproduces its message (`sample_accuracy`).
    """
    if cfg.name == "cycle":
        verdicts, in_cycle, barks = [], 0, 0
        for answer in answers:
            body = answer[:-1] if answer and answer[-1] == EOS else answer
            follows = sum(tok == BARKS[i % 4] for i, tok in enumerate(body))
            stopped_in_range = answer[-1:] == [EOS] and cfg.min_barks <= len(body) <= cfg.max_barks
            verdicts.append(
                {
                    "barks": len(body),
                    "stopped_in_range": stopped_in_range,
                    "cycle_adherence": follows / max(len(body), 1),
                }
            )
            in_cycle, barks = in_cycle + follows, barks + len(body)
        stop_rate = sum(v["stopped_in_range"] for v in verdicts) / max(len(answers), 1)
        return verdicts, {"stop_rate": stop_rate, "cycle_adherence": in_cycle / max(barks, 1)}
    if cfg.name == "echo":
        m = cfg.message_length
        verdicts = [
            {"expected": decode(p[1 : m + 1] + [EOS]), "correct": a == p[1 : m + 1] + [EOS]}
            for p, a in zip(prompts, answers)
        ]
        return verdicts, {"sample_accuracy": sum(v["correct"] for v in verdicts) / max(len(verdicts), 1)}
    return [{} for _ in answers], {}
