"""Tasks: the generated data, its layout, and the Bayes floors checked against an independent predictor."""

from __future__ import annotations

import math
import random

import pytest
import torch

from barkbench import tasks, vocab
from barkbench.buckets import power_of_two_bucket
from barkbench.config import RunConfig, validate
from barkbench.errors import BarkError
from barkbench.tasks import TASKS
from barkbench.vocab import ASSISTANT, BARKS, EOS, PAD, SPEAK, USER


def task_cfg(**task):
    return RunConfig.model_validate({"task": task}).task


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- Bayes floors -----------------------------------------------------------------------


def bayes_costs(data: tasks.Dataset, name: str, min_n: int, max_n: int):
    """Per-sequence nats and answer-token counts of the Bayes-optimal predictor for barks/cycle.

    Written from the task definition, not from barkbench's floor: after k barks the predictor
    knows k; while k < min_n it must bark; from then on it stops with probability
    1/(max_n - k + 1). A bark is uniform over the four barks (barks) or the next one in the
    cycle (cycle). Targets the predictor gives probability 0 cost infinity.
    """
    tokens = data.tokens
    count, width = tokens.shape
    start = data.answer_start[:, None]
    cols = torch.arange(width)[None, :]
    k = (cols - start).clamp(min=0).double()  # barks already emitted before this position
    answer = (cols >= start) & (tokens != PAD)

    p_stop = torch.where(k >= min_n, 1.0 / (max_n - k + 1).clamp(min=1), torch.zeros_like(k))
    is_eos = tokens == EOS
    is_bark = torch.zeros_like(is_eos)
    for b in BARKS:
        is_bark |= tokens == b
    if name == "barks":
        p_bark = torch.where(is_bark, torch.full_like(k, 0.25), torch.zeros_like(k))
    else:
        expected = torch.tensor(BARKS)[(cols - start).clamp(min=0) % 4]
        p_bark = (tokens == expected).double()
    prob = torch.where(is_eos, p_stop, (1 - p_stop) * p_bark)
    nats = torch.where(answer, -torch.log(prob), torch.zeros_like(prob))
    return nats.sum(1), answer.sum(1).double()


@pytest.mark.parametrize(
    "name, min_n, max_n, count",
    [
        ("barks", 2, 10, 100_000),
        ("barks", 3, 7, 100_000),
        ("barks", 5, 5, 20_000),
        ("cycle", 100, 200, 20_000),
        ("cycle", 3, 6, 100_000),
    ],
)
def test_floor_matches_bayes_predictor_monte_carlo(name, min_n, max_n, count):
    cfg = task_cfg(name=name, min_barks=min_n, max_barks=max_n)
    data = TASKS[name].make(cfg, count, gen(123))
    nats, n_tokens = bayes_costs(data, name, min_n, max_n)
    assert torch.isfinite(nats).all(), "the data holds a token the Bayes predictor thinks impossible"
    estimate = float(nats.sum() / n_tokens.sum())
    # Standard error of a ratio estimator (delta method).
    resid = nats - estimate * n_tokens
    se = float(resid.std() / n_tokens.mean() / math.sqrt(count))
    floor = TASKS[name].floor(cfg)
    assert abs(estimate - floor) <= 3 * se + 1e-9, (estimate, floor, se)
    if min_n < max_n:
        assert floor > 0


def exact_bayes_floor(name: str, min_n: int, max_n: int) -> float:
    """The exact expectation, enumerating n: E[nats of one answer] / E[answer tokens]."""
    bark = math.log(4) if name == "barks" else 0.0
    span = max_n - min_n + 1
    total_nats = total_tokens = 0.0
    for n in range(min_n, max_n + 1):
        nats = 0.0
        for k in range(n):  # k barks emitted, the next one is a bark
            p_stop = 1.0 / (max_n - k + 1) if k >= min_n else 0.0
            nats += -math.log(1 - p_stop) + bark
        nats += -math.log(1.0 / (max_n - n + 1))  # <EOS> after n barks
        total_nats += nats / span
        total_tokens += (n + 1) / span
    return total_nats / total_tokens


@pytest.mark.parametrize("name", ["barks", "cycle"])
@pytest.mark.parametrize("min_n, max_n", [(2, 10), (100, 200), (3, 6), (1, 1), (7, 8)])
def test_floor_matches_exact_enumeration(name, min_n, max_n):
    cfg = task_cfg(name=name, min_barks=min_n, max_barks=max_n)
    assert TASKS[name].floor(cfg) == pytest.approx(exact_bayes_floor(name, min_n, max_n), rel=1e-9, abs=1e-12)


def test_floor_closed_form():
    # The stop decisions together carry exactly the entropy of n, ln(span); each bark of `barks`
    # costs ln 4 more. Per answer token that is (E[n] ln 4 + ln span) / (E[n] + 1).
    barks = TASKS["barks"].floor(task_cfg(name="barks"))  # defaults 2..10
    cycle = TASKS["cycle"].floor(task_cfg(name="cycle"))  # defaults 100..200
    assert barks == pytest.approx((6 * math.log(4) + math.log(9)) / 7, rel=1e-12)
    assert cycle == pytest.approx(math.log(101) / 151, rel=1e-12)
    assert TASKS["cycle"].floor(task_cfg(name="cycle", min_barks=4, max_barks=4)) == 0.0
    assert TASKS["barks"].floor(task_cfg(name="barks", min_barks=4, max_barks=4)) == pytest.approx(
        4 * math.log(4) / 5, rel=1e-12
    )


def test_echo_floor_is_zero_and_answer_is_the_message():
    cfg = task_cfg(name="echo", message_length=5, min_gap=0, max_gap=20)
    assert TASKS["echo"].floor(cfg) == 0.0
    data = TASKS["echo"].make(cfg, 500, gen(0))
    m = cfg.message_length
    for row, start in zip(data.tokens.tolist(), data.answer_start.tolist()):
        assert row[0] == USER
        assert row[start - 1] == ASSISTANT
        assert row[m + 1] == SPEAK
        message = row[1 : m + 1]
        assert all(t in BARKS for t in message)
        assert row[start : start + m] == message
        assert row[start + m] == EOS


# ---- the contract, for every task ---------------------------------------------------------


def random_settings(name: str, rng: random.Random) -> dict:
    """Random valid settings of a task's own keys: whole numbers near their lower limits."""
    fields = TASKS[name].config.model_fields
    while True:
        settings = {"name": name, "train_size": 8, "val_size": 8}
        for key, field in fields.items():
            if key in settings or field.annotation is not int:
                continue
            low = next((m.ge for m in field.metadata if hasattr(m, "ge")), 0)
            settings[key] = rng.randint(low, low + 12)
        try:
            return validate({"task": settings, "model": {"name": "rnn"}}, "random settings").task.model_dump()
        except BarkError:
            continue  # min above max: draw again


@pytest.mark.parametrize("name", list(TASKS))
def test_longest_is_at_least_the_longest_sequence_the_task_makes(name):
    rng = random.Random(0)
    reached = 0
    for i in range(40):
        cfg = TASKS[name].config.model_validate(random_settings(name, rng))
        data = TASKS[name].make(cfg, 64, gen(i))
        made = int((data.tokens != PAD).sum(1).max())
        assert made <= TASKS[name].longest(cfg), cfg
        reached += made == TASKS[name].longest(cfg)
    assert reached > 0  # and it is the longest, not just a bound: some settings reach it


def speak_costs(data, cfg):
    return bayes_costs(data, cfg.name, cfg.min_barks, cfg.max_barks)


def determined(answer):
    """The Bayes predictor of a task whose prompt determines the answer: all its probability on
    answer(prompt, given, cfg), where given holds the answer's given tokens in place (None
    elsewhere: the predictor is fed them, as a model is); a token it did not predict costs
    infinity. Only the tokens a model is asked for count."""

    def costs(data, cfg):
        nats, counts = [], []
        given = data.given.tolist() if data.given is not None else [[False] * data.tokens.shape[1]] * len(data)
        for row, start, fed in zip(data.tokens.tolist(), data.answer_start.tolist(), given):
            truth = row[start : row.index(EOS) + 1]
            fed = fed[start : start + len(truth)]
            predicted = answer(row[:start], [t if g else None for t, g in zip(truth, fed)], cfg)
            wrong = any(p != t for p, t, g in zip(predicted, truth, fed) if not g) or len(predicted) != len(truth)
            nats.append(math.inf if wrong else 0.0)
            counts.append(len(truth) - sum(fed))
        return torch.tensor(nats, dtype=torch.float64), torch.tensor(counts, dtype=torch.float64)

    return costs


def recall(prompt, given, cfg):
    """mqar: each given query key, then the value the prompt paired it with; <EOS> at the end."""
    pairs = dict(zip(prompt[1:-2:2], prompt[2:-2:2]))
    return [t if t is not None else pairs[given[i - 1]] for i, t in enumerate(given[:-1])] + [EOS]


# Each task's Bayes-optimal predictor, written from the task's definition rather than its floor.
BAYES = {
    "barks": speak_costs,
    "cycle": speak_costs,
    "echo": determined(lambda prompt, given, cfg: prompt[1 : cfg.message_length + 1] + [EOS]),
    "copy": determined(lambda prompt, given, cfg: prompt[1:-2] + [EOS]),
    "reverse": determined(lambda prompt, given, cfg: prompt[1:-2][::-1] + [EOS]),
    "mqar": determined(recall),
    "selective_copy": determined(lambda prompt, given, cfg: [t for t in prompt[1:-2] if t in BARKS] + [EOS]),
    "induction": determined(lambda prompt, given, cfg: [prompt[prompt.index(SPEAK) + 1], EOS]),
}


def test_every_task_has_a_bayes_predictor_here():
    assert set(BAYES) == set(TASKS)


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_floor_matches_a_monte_carlo_estimate_at_random_settings(name, seed):
    cfg = TASKS[name].config.model_validate(random_settings(name, random.Random(seed)))
    count = 20_000
    data = TASKS[name].make(cfg, count, gen(100 + seed))
    nats, n_tokens = BAYES[name](data, cfg)
    assert torch.isfinite(nats).all(), "the data holds a token the Bayes predictor thinks impossible"
    estimate = float(nats.sum() / n_tokens.sum())
    resid = nats - estimate * n_tokens  # standard error of a ratio estimator (delta method)
    se = float(resid.std() / n_tokens.mean() / math.sqrt(count))
    assert abs(estimate - TASKS[name].floor(cfg)) <= 3 * se + 1e-9, (cfg, estimate, se)


@pytest.mark.parametrize("name", list(TASKS))
def test_the_vocabulary_round_trip(name):
    """Every sequence a task makes decodes to words of its vocabulary and encodes back to itself."""
    rng = random.Random(1)
    for i in range(5):
        cfg = TASKS[name].config.model_validate(random_settings(name, rng))
        words = TASKS[name].vocab(cfg)
        data = TASKS[name].make(cfg, 32, gen(i))
        assert int(data.tokens.max()) < len(words)
        for row in data.tokens.tolist():
            real = [t for t in row if t != PAD]
            assert vocab.encode(vocab.decode(real, words), words) == real


class Peeking(torch.nn.Module):
    """A model that reads the answer off its input: it predicts every next token right (the last
    one of a full row is <EOS>), except at the positions wrong[b, t] marks, where it predicts
    <PAD>. For one batch of the whole data set, in order."""

    def __init__(self, size: int, wrong: torch.Tensor):
        super().__init__()
        self.size, self.wrong = size, wrong

    def teacher_forcing(self, x, answer_start):
        nxt = torch.cat([x[:, 1:], torch.full_like(x[:, :1], PAD)], 1)
        nxt = torch.where((nxt == PAD) & (x != PAD) & (x != EOS), EOS, nxt)  # a full row's last target
        nxt = torch.where(self.wrong[:, : x.shape[1]], PAD, nxt)
        return torch.nn.functional.one_hot(nxt, self.size).float() * 50


def peeking_figures(name: str, data, cfg, wrong):
    from barkbench.evaluate import evaluate, shortest_first

    label = TASKS[name].buckets.label if TASKS[name].buckets else None
    wrong = wrong[shortest_first(data)]  # row b of the batch is the data's in the order evaluate reads them
    return evaluate(Peeking(len(TASKS[name].vocab(cfg)), wrong), data, len(data), "cpu", label)


@pytest.mark.parametrize("name", list(TASKS))
def test_given_tokens_are_never_counted(name):
    """A model that gets every given token wrong scores as one that gets it right; wrong at a
    counted token, it does not (so the comparison can fail)."""
    cfg = TASKS[name].config.model_validate(random_settings(name, random.Random(2)))
    data = TASKS[name].make(cfg, 64, gen(3))
    nothing = torch.zeros_like(data.tokens, dtype=torch.bool)
    right = peeking_figures(name, data, cfg, nothing)
    assert right["accuracy"] == right["bark_accuracy"] == right["exact_match"] == 1.0 and right["loss"] < 1e-6
    given = nothing if data.given is None else data.given[:, 1:]  # the positions that predict a given token
    assert peeking_figures(name, data, cfg, torch.cat([given, nothing[:, :1]], 1)) == right
    first = nothing.clone()
    first[torch.arange(len(data)), data.answer_start - 1] = True  # the first answer token: never given here
    if data.given is not None:
        first[torch.arange(len(data)), data.answer_start - 1] = False
        first[torch.arange(len(data)), data.answer_start] = True  # mqar: the first value
    assert peeking_figures(name, data, cfg, first)["exact_match"] == 0.0


@pytest.mark.parametrize("name", [name for name, task in TASKS.items() if task.buckets])
def test_buckets_cover_the_data(name):
    """Every answer token a bucket counts (content, never <EOS> or a given token) has a value the
    task says its settings cover, each token of a unit the same value, and nothing else has one."""
    rng = random.Random(4)
    task = TASKS[name]
    for i in range(10):
        cfg = task.config.model_validate(random_settings(name, rng))
        data = task.make(cfg, 200, gen(i))
        cols = torch.arange(data.tokens.shape[1])[None, :]
        content = (cols >= data.answer_start[:, None]) & (data.tokens != PAD) & (data.tokens != EOS)
        if data.given is not None:
            content &= ~data.given
        assert ((data.bucket >= 0) == content).all(), cfg
        assert set(data.bucket[content].tolist()) <= set(task.buckets.values(cfg)), cfg
        if data.unit is not None:
            assert ((data.unit >= 0) == content).all()
            for row_bucket, row_unit in zip(data.bucket.tolist(), data.unit.tolist()):
                per_unit = {}
                for b, u in zip(row_bucket, row_unit):
                    per_unit.setdefault(u, set()).add(b)
                assert all(len(values) == 1 for u, values in per_unit.items() if u >= 0)
        else:  # the whole answer is one unit: its content has one value
            assert all(len({b for b in row if b >= 0}) == 1 for row in data.bucket.tolist())


# ---- data --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["barks", "cycle", "echo"])
def test_same_seed_same_data_and_splits_differ(name):
    extra = {"min_barks": 2, "max_barks": 40} if name == "cycle" else {}
    cfg = task_cfg(name=name, train_size=300, val_size=300, max_gap=16, **extra)
    train_a, val_a, test_a = tasks.make_splits(cfg, seed=0)
    train_b, val_b, test_b = tasks.make_splits(cfg, seed=0)
    assert torch.equal(train_a.tokens, train_b.tokens)
    assert torch.equal(val_a.tokens, val_b.tokens)
    assert torch.equal(train_a.answer_start, train_b.answer_start)
    assert len(train_a) == 300 and len(val_a) == 300

    assert torch.equal(test_a.tokens, test_b.tokens) and len(test_a) == 300  # test_size defaults to val_size
    train_c, val_c, test_c = tasks.make_splits(cfg, seed=1)
    assert not torch.equal(train_a.tokens, train_c.tokens)
    assert not torch.equal(val_a.tokens, val_c.tokens)
    assert not torch.equal(test_a.tokens, test_c.tokens)
    # Train, validation and test come from independent streams.
    assert not torch.equal(train_a.tokens, val_a.tokens)
    assert not torch.equal(val_a.tokens, test_a.tokens)
    assert len(tasks.make_splits(task_cfg(name=name, val_size=30, test_size=7, **extra), seed=0).test) == 7


def test_eval_cfg_changes_only_the_validation_and_test_sets():
    cfg = task_cfg(name="echo", train_size=50, val_size=40, max_gap=8)
    val_cfg = task_cfg(name="echo", train_size=50, val_size=40, min_gap=20, max_gap=30)
    train, val, test = tasks.make_splits(cfg, 0, val_cfg)
    train_ref = tasks.make_splits(cfg, 0).train
    assert torch.equal(train.tokens, train_ref.tokens)
    for held_out in (val, test):  # the test set is drawn as the validation set is: beyond what was trained
        gaps = held_out.answer_start - cfg.message_length - 3
        assert int(gaps.min()) >= 20 and int(gaps.max()) <= 30


def echo_gaps(data, m):
    return (data.answer_start - m - 3).tolist()


def test_echo_gap_noise_differs_between_sequences():
    # Regression: a bug once made every sequence share one noise pattern.
    m = 4
    cfg = task_cfg(name="echo", message_length=m, min_gap=10, max_gap=12)
    data = TASKS["echo"].make(cfg, 400, gen(7))
    gap_noise = data.tokens[:, m + 2 : m + 2 + 10]  # the first 10 gap tokens of every sequence
    assert all(t in BARKS for t in gap_noise.flatten().tolist())
    distinct = {tuple(row) for row in gap_noise.tolist()}
    assert len(distinct) > 390  # 4**10 patterns; collisions among 400 are rare
    # Noise is not the message copied, and each bark appears about equally often.
    assert not torch.equal(gap_noise[:, :m], data.tokens[:, 1 : m + 1])
    counts = torch.stack([(gap_noise == b).sum() for b in BARKS]).double()
    assert float(counts.min() / counts.max()) > 0.85
    # Within one sequence, noise differs from position to position too.
    assert (gap_noise != gap_noise[:, :1]).any(1).float().mean() > 0.99


def test_echo_gap_lengths_cover_the_range_and_layout():
    m = 3
    cfg = task_cfg(name="echo", message_length=m, min_gap=2, max_gap=9)
    data = TASKS["echo"].make(cfg, 2000, gen(1))
    gaps = echo_gaps(data, m)
    assert set(gaps) == set(range(2, 10))
    assert data.tokens.shape[1] == TASKS[cfg.name].longest(cfg)
    for row, g, start in zip(data.tokens.tolist(), gaps, data.answer_start.tolist()):
        assert row[m + 2 + g] == ASSISTANT and start == m + 3 + g
        assert all(t in BARKS for t in row[m + 2 : m + 2 + g])


def test_echo_zero_gap():
    m = 2
    cfg = task_cfg(name="echo", message_length=m, min_gap=0, max_gap=0)
    data = TASKS["echo"].make(cfg, 20, gen(2))
    for row in data.tokens.tolist():
        assert row == [USER, *row[1:3], SPEAK, ASSISTANT, *row[1:3], EOS]


def test_echo_distance():
    m = 5
    cfg = task_cfg(name="echo", message_length=m, min_gap=0, max_gap=30)
    data = TASKS["echo"].make(cfg, 300, gen(3))
    assert data.bucket is not None and data.bucket.shape == data.tokens.shape
    for row, dist, start in zip(data.tokens.tolist(), data.bucket.tolist(), data.answer_start.tolist()):
        g = start - m - 3
        expected = [-1] * len(row)
        for j in range(m):
            expected[start + j] = m + g + 2
            # the distance really points at the source token
            assert row[start + j - (m + g + 2)] == row[start + j]
        assert dist == expected


@pytest.mark.parametrize(
    "name, extra",
    [
        ("barks", {}),
        ("barks", {"min_barks": 1, "max_barks": 3}),
        ("cycle", {"min_barks": 5, "max_barks": 30}),
        ("echo", {"message_length": 4, "min_gap": 0, "max_gap": 12}),
    ],
)
def test_right_padded_only_after_eos(name, extra):
    cfg = task_cfg(name=name, **extra)
    data = TASKS[name].make(cfg, 500, gen(4))
    assert data.tokens.dtype == torch.long
    lengths = set()
    for row, start in zip(data.tokens.tolist(), data.answer_start.tolist()):
        assert row.count(EOS) == 1
        end = row.index(EOS)
        assert PAD not in row[: end + 1]
        assert all(t == PAD for t in row[end + 1 :])
        assert row[start - 1] == ASSISTANT and row.count(ASSISTANT) == 1
        assert end >= start
        lengths.add(end + 1)
    assert len(lengths) > 1  # sequences of varying length, so padding is exercised
    assert max(lengths) == data.tokens.shape[1]  # no all-PAD trailing column


@pytest.mark.parametrize("name, min_n, max_n", [("barks", 2, 10), ("cycle", 3, 6)])
def test_speak_tasks_lengths_cover_range(name, min_n, max_n):
    cfg = task_cfg(name=name, min_barks=min_n, max_barks=max_n)
    data = TASKS[name].make(cfg, 3000, gen(5))
    n = ((data.tokens != PAD).sum(1) - 4).tolist()
    assert set(n) == set(range(min_n, max_n + 1))
    assert (data.tokens[:, :3] == torch.tensor([USER, SPEAK, ASSISTANT])).all()
    if name == "barks":
        barks = data.tokens[:, 3 : 3 + min_n]
        counts = torch.stack([(barks == b).sum() for b in BARKS]).double()
        assert float(counts.min() / counts.max()) > 0.9


def test_encode_decode_and_unknown_word():
    assert vocab.encode("User: speak Assistant:") == [USER, SPEAK, ASSISTANT]
    assert vocab.decode(vocab.encode("woof arf <EOS>")) == "woof arf <EOS>"
    with pytest.raises(BarkError, match="meow") as info:
        vocab.encode("User: woof meow Assistant:")
    message = str(info.value)
    assert all(word in message for word in vocab.VOCAB)  # it lists the vocabulary


def test_vocabulary_order():
    assert vocab.VOCAB == ("<PAD>", "<EOS>", "woof", "arf", "ruff", "grrr", "User:", "Assistant:", "speak")
    for name, task in TASKS.items():  # every task's vocabulary starts with the bark words, in their order
        words = task.vocab(task.config(name=name))
        assert words[: len(vocab.VOCAB)] == vocab.VOCAB and len(set(words)) == len(words)


@pytest.mark.parametrize(
    "d, label",
    [(1, "1-1"), (2, "2-3"), (3, "2-3"), (7, "4-7"), (8, "8-15"), (15, "8-15"), (16, "16-31"), (130, "128-255")],
)
def test_distance_bucket(d, label):
    assert power_of_two_bucket(d) == label


def test_twenty_thousand_echo_sequences():
    cfg = task_cfg(name="echo")  # defaults: message_length 8, gap 0..128
    data = TASKS["echo"].make(cfg, 20_000, gen(6))
    assert data.tokens.shape == (20_000, TASKS[cfg.name].longest(cfg))
    assert len(data) == 20_000
    assert (data.tokens[:, 0] == USER).all()
    assert int((data.tokens == EOS).sum()) == 20_000


def test_stream_is_deterministic_and_named():
    a = torch.randint(0, 1000, (10,), generator=tasks.stream(0, "train"))
    b = torch.randint(0, 1000, (10,), generator=tasks.stream(0, "train"))
    c = torch.randint(0, 1000, (10,), generator=tasks.stream(0, "val"))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", ["copy", "reverse"])
def test_copy_and_reverse_lay_out_the_source_and_bucket_by_its_length(name):
    cfg = task_cfg(name=name, min_length=2, max_length=9)
    data = TASKS[name].make(cfg, 2000, gen(8))
    lengths = set()
    for row, start, bucket in zip(data.tokens.tolist(), data.answer_start.tolist(), data.bucket.tolist()):
        n = start - 3
        lengths.add(n)
        assert row[0] == USER and row[n + 1] == SPEAK and row[n + 2] == ASSISTANT
        source, answer = row[1 : n + 1], row[start : start + n]
        assert all(t in BARKS for t in source)
        assert answer == (source if name == "copy" else source[::-1])
        assert row[start + n] == EOS and all(t == PAD for t in row[start + n + 1 :])
        assert bucket == [-1] * start + [n] * n + [-1] * (len(row) - start - n)  # barks by n; <EOS> none
    assert lengths == set(range(2, 10))
    assert len({tuple(r[1:3]) for r in data.tokens.tolist()}) == 16  # sources differ between sequences


@pytest.mark.parametrize("n, label", [(1, "1-8"), (8, "1-8"), (9, "9-16"), (48, "41-48"), (49, "49-56")])
def test_length_buckets(n, label):
    assert TASKS["copy"].buckets.label(n) == label
