"""The model families, found by name in MODELS; each family is a package here (its config and
checks in __init__.py, its network in network.py), and nothing outside this package asks for a
model's name or class. A plugin's family is found by its entry point (barkbench/registry.py).

Every model keeps one protocol, barkbench/models/protocol.py's Model, so training, evaluation,
sampling, `inspect` and `bench` never ask which one they hold. Decoder-only models
(barkbench/models/parts.py's DecoderOnly) also take `model(tokens, state)`; encoder–decoder
models (parts.py's EncoderDecoder) `encode(source, lengths)` and `model(target, state)`.
"""

from __future__ import annotations

from barkbench.models import gpt, modern, recurrent, seq2seq, transformer
from barkbench.models.family import Family, held_to_protocol
from barkbench.registry import Registry

BUILT_IN: dict[str, Family] = {
    "rnn": recurrent.RNN,
    "lstm": recurrent.LSTM,
    "gru": recurrent.GRU,
    "gpt": gpt.GPT,
    "seq2seq": seq2seq.SEQ2SEQ,
    "transformer": transformer.TRANSFORMER,
    "linear_attention": modern.LINEAR_ATTENTION,
    "deltanet": modern.DELTANET,
    "gated_deltanet": modern.GATED_DELTANET,
    "mamba": modern.MAMBA,
    "mlstm": modern.MLSTM,
    "mingru": modern.MINGRU,
    "minlstm": modern.MINLSTM,
}
# Those, then the plugins installed under the entry-point group barkbench.models (barkbench/registry.py),
# each held to the model protocol when a config of it is validated
MODELS = Registry("model", Family, BUILT_IN, adopt=held_to_protocol)
DEFAULT_MODEL = "gpt"  # what a config without a `model.name` gets


def family_of(model_cfg) -> Family:
    return MODELS[model_cfg.name]


def build_model(model_cfg, vocab_size: int):
    return family_of(model_cfg).build(model_cfg, vocab_size)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
