"""barkbench-window: a sliding-window attention GPT for barkbench, as a plugin.

Every position attends to itself and the `model.window` tokens before it, and to nothing further
back (Longformer's sliding window, Beltagy et al. 2020; Mistral 7B's, Jiang et al. 2023). So its
key/value cache holds the last `window` positions of each layer and no more: a transformer whose
state, like a recurrent model's, does not grow with the sequence. What lies further back reaches
a position only through the layers between, a window at a time (layers x window at most).

This is the module the entry point names (pyproject.toml): the `model:` section, its checks and
the Family, with no torch, so that barkbench validates a config without loading it; build()
imports the network (network.py) when a model is made.
"""

from __future__ import annotations

from pydantic import Field

from barkbench.plugins import Family, ModelSection


class WindowConfig(ModelSection):
    name: str = "window"
    window: int = Field(16, ge=1, description="the earlier tokens each position attends to: what its cache holds")


def heads_fit(cfg):
    """A check (barkbench runs it with the others, on the whole run config): a sentence, or None."""
    width, heads = cfg.model.embedding_dim, cfg.model.heads
    if width % heads:
        return f"model.heads ({heads}) does not divide model.embedding_dim ({width}); give heads that divide it"
    if width // heads % 2:
        return (
            f"rotary positions rotate pairs of features, but each head has {width // heads} "
            f"(model.embedding_dim {width} / {heads} heads), an odd number; pick sizes that make it even"
        )
    return None


def build(cfg: WindowConfig, vocab_size: int):
    from barkbench_window.network import WindowGPT

    return WindowGPT(cfg, vocab_size)


FAMILY = Family(
    config=WindowConfig,
    build=build,
    checks=((("model.name", "model.embedding_dim", "model.heads"), heads_fit),),  # (the keys it reads, the check)
    capacity_keys=("window",),  # how much it can remember: a study sweeping it draws memory_map.png
)
