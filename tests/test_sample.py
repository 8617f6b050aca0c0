"""Sampling: the cache against the full re-run, greedy and top-k, seeds, <EOS> and context_length."""

from __future__ import annotations

import pytest
import torch
from helpers import small_model

from barkbench import sample, vocab
from barkbench.errors import BarkError
from barkbench.vocab import EOS

PROMPT = vocab.encode(vocab.SPEAK_PROMPT)


def make_model(name: str, seed: int = 1, eos_bias: float | None = -1e4, scale: float = 1.0, **overrides):
    """A seeded, untrained model. eos_bias sets the head's <EOS> bias (strongly negative: it never
    stops); scale multiplies the embedding and recurrent weights so greedy output varies."""
    model = small_model(name, seed, **overrides)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.startswith(("embed", "tok", "core")):
                p.mul_(scale)
        if eos_bias is not None:
            model.head.bias[EOS] = eos_bias
    return model


class Forgetful(torch.nn.Module):
    """A model whose cache is broken: each step forgets the state it is given."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def room(self, prompt_length):
        return self.inner.room(prompt_length)

    def prefill(self, prompt):
        return self.inner.prefill(prompt)

    def decode(self, token, state):
        return self.inner.prefill(token[:, None])


@pytest.mark.parametrize("name, scale", [("gpt", 1.0), ("gpt", 3.0), ("rnn", 5.0), ("lstm", 5.0), ("gru", 3.0)])
def test_greedy_cached_equals_uncached(name, scale):
    model = make_model(name, scale=scale)
    cached = sample.generate(model, PROMPT, num_samples=2, max_new_tokens=50, temperature=0)
    full = sample.generate(model, PROMPT, num_samples=2, max_new_tokens=50, temperature=0, use_cache=False)
    assert cached == full
    assert all(len(row) == 50 for row in cached)  # it did not stop early
    assert EOS not in cached[0]
    assert cached[0] == cached[1]  # greedy: every sample the same
    if name in ("gpt", "rnn"):
        assert len(set(cached[0])) >= 4  # a varied sequence, not one token repeated
        # The comparison can fail: a model that drops its state generates something else.
        broken = sample.generate(Forgetful(model), PROMPT, num_samples=1, max_new_tokens=50, temperature=0)
        assert broken[0] != cached[0]


@pytest.mark.parametrize("name", ["gpt", "rnn"])
def test_sampled_cached_equals_uncached_with_same_seed(name):
    model = make_model(name, scale=3.0, eos_bias=0.0)
    kwargs = {"num_samples": 4, "max_new_tokens": 30, "temperature": 1.0}
    cached = sample.generate(model, PROMPT, generator=torch.Generator().manual_seed(5), **kwargs)
    full = sample.generate(model, PROMPT, generator=torch.Generator().manual_seed(5), use_cache=False, **kwargs)
    assert cached == full


@pytest.mark.parametrize("name", ["gpt", "rnn"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_eos_model_stops_at_once_and_keeps_eos(name, use_cache):
    model = make_model(name, eos_bias=1e4)
    for temperature in (0, 0.7):
        out = sample.generate(
            model,
            PROMPT,
            num_samples=3,
            max_new_tokens=50,
            temperature=temperature,
            generator=torch.Generator().manual_seed(0),
            use_cache=use_cache,
        )
        assert out == [[EOS]] * 3


@pytest.mark.parametrize("name", ["gpt", "rnn"])
def test_samples_are_cut_after_their_eos(name):
    model = make_model(name, eos_bias=-0.5)  # some samples stop, at different steps; some run out
    out = sample.generate(
        model, PROMPT, num_samples=24, max_new_tokens=20, temperature=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert len(out) == 24
    stopped = [row for row in out if EOS in row]
    assert 0 < len(stopped) < 24
    for row in out:
        assert len(row) <= 20
        if EOS in row:
            assert row.index(EOS) == len(row) - 1  # nothing after <EOS>, and <EOS> kept
        else:
            assert len(row) == 20
    assert len({len(row) for row in stopped}) > 1  # rows stop at different steps


@pytest.mark.parametrize("name", ["gpt", "rnn"])
def test_top_k_one_equals_greedy(name):
    model = make_model(name, scale=3.0)
    greedy = sample.generate(model, PROMPT, num_samples=3, max_new_tokens=40, temperature=0)
    top1 = sample.generate(
        model,
        PROMPT,
        num_samples=3,
        max_new_tokens=40,
        temperature=1.5,
        top_k=1,
        generator=torch.Generator().manual_seed(9),
    )
    assert top1 == greedy


@pytest.mark.parametrize("name", ["gpt", "rnn"])
def test_same_seed_same_samples(name):
    model = make_model(name, eos_bias=0.0)
    kwargs = {"num_samples": 6, "max_new_tokens": 30, "temperature": 1.0}
    a = sample.generate(model, PROMPT, generator=torch.Generator().manual_seed(3), **kwargs)
    b = sample.generate(model, PROMPT, generator=torch.Generator().manual_seed(3), **kwargs)
    c = sample.generate(model, PROMPT, generator=torch.Generator().manual_seed(4), **kwargs)
    assert a == b
    assert a != c
    assert len({tuple(row) for row in a}) > 1  # the samples of one call differ from each other


def test_pick_top_k_keeps_only_the_k_best():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.9, -1.0]]).repeat(4000, 1)
    picks = sample.pick(logits, 1.0, 2, torch.Generator().manual_seed(0))
    assert set(picks.tolist()) == {1, 3}
    # the two kept tokens keep their relative odds: e^3 / (e^3 + e^2.9) ~ 0.525
    assert abs(float((picks == 1).float().mean()) - 0.525) < 0.03
    assert torch.equal(sample.pick(logits[:3], 0, None, None), torch.tensor([1, 1, 1]))
    assert torch.equal(sample.pick(logits[:3], 0, 2, None), torch.tensor([1, 1, 1]))


def test_pick_temperature_follows_softmax():
    # Column 0 is <PAD>, which is never sampled: the rest follow the softmax of their logits.
    logits = torch.tensor([[5.0, 0.0, 1.0, 2.0]]).repeat(20000, 1)
    for temperature in (1.0, 2.0):
        picks = sample.pick(logits, temperature, None, torch.Generator().manual_seed(1))
        freq = torch.bincount(picks, minlength=4).double() / len(picks)
        assert freq[0] == 0
        expected = torch.softmax(logits[0, 1:].double() / temperature, -1)
        assert (freq[1:] - expected).abs().max() < 0.015


def test_pick_never_returns_pad():
    logits = torch.full((4, len(vocab.VOCAB)), -10.0)
    logits[:, vocab.PAD] = 10.0
    assert (sample.pick(logits, 0, None, None) != vocab.PAD).all()
    assert (sample.pick(logits, 1.0, None, torch.Generator().manual_seed(0)) != vocab.PAD).all()


@pytest.mark.parametrize("use_cache", [True, False])
def test_gpt_never_goes_past_context_length(use_cache):
    model = make_model("gpt", context_length=16)
    out = sample.generate(model, PROMPT, num_samples=2, max_new_tokens=100, temperature=0, use_cache=use_cache)
    assert [len(row) for row in out] == [16 - len(PROMPT)] * 2
    full_prompt = PROMPT + [vocab.VOCAB.index("woof")] * (16 - len(PROMPT))
    assert sample.generate(model, full_prompt, max_new_tokens=10, temperature=0, use_cache=use_cache) == [[]]
    sampled = sample.generate(
        model,
        PROMPT,
        num_samples=2,
        max_new_tokens=100,
        temperature=1.0,
        generator=torch.Generator().manual_seed(0),
        use_cache=use_cache,
    )
    assert all(len(PROMPT) + len(row) <= 16 for row in sampled)


def test_rnn_has_no_context_limit():
    model = make_model("rnn")
    out = sample.generate(model, PROMPT, max_new_tokens=120, temperature=0)
    assert len(out[0]) == 120


def test_prompt_longer_than_context_is_an_error():
    model = make_model("gpt", context_length=8)
    with pytest.raises(BarkError, match="context_length"):
        sample.generate(model, PROMPT * 3, max_new_tokens=5)


def test_generate_restores_training_mode():
    model = make_model("gpt")
    model.train()
    sample.generate(model, PROMPT, max_new_tokens=3, temperature=0)
    assert model.training
    model.eval()
    sample.generate(model, PROMPT, max_new_tokens=3, temperature=0)
    assert not model.training
