"""The bark language's words. Every task's vocabulary starts with these nine, in this order
(ids 0..8), so padding, stopping and the shared words mean the same everywhere; a task may
bring words of its own after them (mqar's keys and values, selective_copy's blank)."""

from __future__ import annotations

import re

from barkbench.errors import BarkError

VOCAB = ("<PAD>", "<EOS>", "woof", "arf", "ruff", "grrr", "User:", "Assistant:", "speak")
PAD, EOS = 0, 1
USER, ASSISTANT, SPEAK = (VOCAB.index(w) for w in ("User:", "Assistant:", "speak"))
BARKS = tuple(VOCAB.index(w) for w in ("woof", "arf", "ruff", "grrr"))  # also the order of the cycle
SPEAK_PROMPT = "User: speak Assistant:"


def encode(text: str, vocab: tuple[str, ...] = VOCAB) -> list[int]:
    """Whitespace-split words to ids; a word outside the vocabulary is an error naming it."""
    ids = {word: i for i, word in enumerate(vocab)}
    unknown = [w for w in text.split() if w not in ids]
    if unknown:
        raise BarkError(f"the word {unknown[0]!r} is not in the vocabulary; use only: {shape(vocab)}")
    return [ids[w] for w in text.split()]


def decode(ids, vocab: tuple[str, ...] = VOCAB) -> str:
    return " ".join(vocab[int(i)] for i in ids)


def shape(vocab: tuple[str, ...]) -> str:
    """The vocabulary as a reader takes it in: numbered runs folded, "... speak k0..k31 v0..v31"."""
    words, i = [], 0
    while i < len(vocab):
        run = re.fullmatch(r"(\D+)(\d+)", vocab[i])
        j = i + 1
        while run and j < len(vocab) and vocab[j] == f"{run[1]}{int(run[2]) + j - i}":
            j += 1
        words.append(f"{vocab[i]}..{vocab[j - 1]}" if j - i >= 3 else " ".join(vocab[i:j]))
        i = j
    return " ".join(words)
