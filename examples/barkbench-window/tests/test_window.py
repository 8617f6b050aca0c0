"""barkbench-window held to barkbench's model contract (causal; generating with its cache equals
the full pass; state_bytes is what decoding carries), to its window (a token reaches layers x
window positions ahead and no further), to a reference written out from the definition position
by position, and run through barkbench itself. Runs against the installed package."""

from __future__ import annotations

import math
from importlib.metadata import entry_points
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from barkbench_window import FAMILY, WindowConfig, build, heads_fit
from barkbench_window.network import rotate

import barkbench

V = 9  # the bark vocabulary


def model(seed: int = 0, **keys):
    """A model with random weights far from its small start, so that one token's effect on another
    is large enough to see, in eval mode."""
    cfg = WindowConfig(**{"embedding_dim": 16, "heads": 2, "layers": 2, "window": 3, "ffn_dim": 24, **keys})
    torch.manual_seed(seed)
    m = build(cfg, V)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape) * (1.5 / p.shape[1] ** 0.5 if p.dim() > 1 else 0.2))
    return m.eval()


def tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, V, (batch, length), generator=torch.Generator().manual_seed(seed))


def logits(m, x):
    return m.teacher_forcing(x, torch.full((x.shape[0],), 1))


def test_the_installed_entry_point_names_the_family():
    (point,) = [p for p in entry_points(group="barkbench.models") if p.name == "window"]
    assert point.load() is FAMILY


@pytest.mark.parametrize("at", [0, 5, 11])
def test_a_token_reaches_layers_times_window_positions_ahead_and_no_further(at):
    m, x = model(), tokens(2, 20)
    changed = x.clone()
    changed[:, at] = x[:, at] % (V - 1) + 1
    moved = (logits(m, changed) - logits(m, x)).abs().amax(dim=(0, 2))
    reach = at + 2 * 3  # 2 layers x window 3
    assert (moved[:at] == 0).all()  # causal
    assert (moved[at : min(reach, 19) + 1] > 1e-4).all()
    assert (moved[reach + 1 :] == 0).all()


@pytest.mark.parametrize("prompt", [1, 2, 7])
def test_generating_with_the_cache_equals_the_full_pass(prompt):
    m, x = model(), tokens(3, 16, seed=1)
    full = logits(m, x)
    step, state = m.prefill(x[:, :prompt])
    steps = [step]
    for t in range(prompt, x.shape[1]):
        step, state = m.decode(x[:, t], state)
        steps.append(step)
    torch.testing.assert_close(torch.stack(steps[:-1], 1), full[:, prompt - 1 : -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 3, 10])
def test_state_bytes_is_what_decoding_carries(length):
    m = model()
    _, (_, caches) = m(tokens(4, length))
    carried = sum(t.numel() * t.element_size() for cache in caches for t in cache) // 4  # per sequence
    assert m.state_bytes(length) == carried
    assert m.state_bytes() == m.state_bytes(1000) == 2 * 2 * 3 * 16 * 4  # layers x (k, v) x window x width x fp32


def reference(m, x: torch.Tensor) -> torch.Tensor:
    """The model's function from its definition, one position and one head at a time: position i
    attends to positions max(0, i - window) .. i, with queries and keys rotated by their positions."""
    B, T = x.shape
    h = m.tok(x)
    for block in m.blocks:
        attn, heads = block.attn, block.attn.heads
        size = h.shape[-1] // heads
        q, k, v = block.attn.qkv(block.norm1(h)).split(h.shape[-1], dim=-1)
        out = torch.zeros_like(h)
        for i in range(T):
            for head in range(heads):
                part = slice(head * size, (head + 1) * size)
                seen = range(max(0, i - attn.window), i + 1)
                query = turn(q[:, i, part], i)
                scores = torch.stack([(query * turn(k[:, j, part], j)).sum(-1) for j in seen], -1) / math.sqrt(size)
                weights = scores.softmax(-1)
                out[:, i, part] = sum(weights[:, n, None] * v[:, j, part] for n, j in enumerate(seen))
        h = h + attn.out(out)
        h = h + block.ffn(block.norm2(h))
    return m.head(m.norm(h))


def turn(vector: torch.Tensor, position: int) -> torch.Tensor:
    """Rotate feature pairs (k, k + size/2) by position x 10000^(-k / (size/2))."""
    half = vector.shape[-1] // 2
    turned = vector.clone()
    for n in range(half):
        angle = position * 10000 ** (-n / half)
        a, b = vector[..., n], vector[..., n + half]
        turned[..., n], turned[..., n + half] = (
            a * math.cos(angle) - b * math.sin(angle),
            a * math.sin(angle) + b * math.cos(angle),
        )
    return turned


@pytest.mark.parametrize("window", [1, 3, 40])
def test_the_network_equals_a_reference_written_from_the_definition(window):
    m, x = model(window=window), tokens(2, 13, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(logits(m, x), reference(m, x), atol=1e-5, rtol=1e-4)


def test_a_window_as_long_as_the_sequence_is_causal_attention():
    m, x = model(window=50, layers=1), tokens(2, 12, seed=3)
    block = m.blocks[0]
    with torch.no_grad():
        h = m.tok(x)
        q, k, v = block.attn.qkv(block.norm1(h)).view(2, 12, 3, 2, 8).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(rotate(q, 0), rotate(k, 0), v, is_causal=True)
        h = h + block.attn.out(y.transpose(1, 2).reshape(2, 12, 16))
        expected = m.head(m.norm(h + block.ffn(block.norm2(h))))
        torch.testing.assert_close(logits(m, x), expected, atol=1e-5, rtol=1e-5)


def test_its_check_names_the_keys():
    def said(**keys):
        return heads_fit(SimpleNamespace(model=WindowConfig(**keys)))

    assert said(embedding_dim=16, heads=2) is None
    assert said(embedding_dim=16, heads=3) == (
        "model.heads (3) does not divide model.embedding_dim (16); give heads that divide it"
    )
    assert said(embedding_dim=12, heads=4).startswith("rotary positions rotate pairs of features, but each head has 3")


def test_it_trains_and_generates_through_barkbench(tmp_path):
    config = {
        "task": {"name": "echo", "message_length": 2, "max_gap": 6, "train_size": 64, "val_size": 16},
        "model": {"name": "window", "window": 4, "embedding_dim": 8, "heads": 2, "layers": 2},
        "train": {"steps": 4, "batch_size": 8, "eval_every": 2},
        "sample": {"num_samples": 2, "max_new_tokens": 4},
    }
    run = barkbench.train(config, runs_dir=tmp_path)
    assert run.status == "completed" and run.summary["model"] == "window" and len(run.samples) == 2
    assert run.summary["state_bytes"] == 2 * 2 * 4 * 8 * 4
    with pytest.raises(barkbench.BarkError, match="model.heads .3. does not divide model.embedding_dim .8."):
        barkbench.train(config, overrides=["model.heads=3"], runs_dir=tmp_path)
