"""The bark language's words. Every task's vocabulary starts with <PAD> and <EOS> (ids 0 and 1),
so padding and stopping mean the same everywhere; a task may bring more words after them."""

from __future__ import annotations

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
        raise BarkError(f"the word {unknown[0]!r} is not in the bark vocabulary; use only: {' '.join(vocab)}")
    return [ids[w] for w in text.split()]


def decode(ids, vocab: tuple[str, ...] = VOCAB) -> str:
    return " ".join(vocab[int(i)] for i in ids)
