"""The model families, found by name in MODELS; each family is a package here (its config and
checks in __init__.py, its network in network.py), and nothing outside this package asks for a
model's name or class. A plugin's family is found by its entry point (barkbench/registry.py).

Every model is a torch module with one protocol, so training, evaluation, sampling, `inspect`
and `bench` never ask which one they hold:

    teacher_forcing(x, answer_start) -> logits [B, T, vocab] for the targets x[:, 1:] and on,
        with every answer token's own prefix as input (the training pass)
    prefill(prompt [B, P]) -> (logits of the next token [B, vocab], state)
    decode(token [B], state) -> (logits of the next token, state): generation, one position a
        token (a hidden state, or key/value caches)
    room(prompt_length) -> how many new tokens fit after a prompt (None: no limit; < 0: the
        prompt itself does not fit), and `context_length`, the limit it names
    state_bytes() -> bytes of state per sequence while generating
    head -> the linear layer that makes the logits
    attention_layers(), alignment_layers() -> the self- and cross-attention layers whose
        weights `inspect` draws (barkbench/models/attention.py)
    gradient_states(x, answer_start) -> (logits, read): after a backward pass, read() gives
        {line name: the gradient norm at each position of the model's state}

Decoder-only models (barkbench/models/parts.py's DecoderOnly) also take `model(tokens, state)`;
encoder–decoder models (parts.py's EncoderDecoder) `encode(source, lengths)` and
`model(target, state)`.
"""

from __future__ import annotations

from barkbench.models import gpt, recurrent, seq2seq, transformer
from barkbench.models.family import Family
from barkbench.registry import Registry

BUILT_IN: dict[str, Family] = {
    "rnn": recurrent.RNN,
    "lstm": recurrent.LSTM,
    "gru": recurrent.GRU,
    "gpt": gpt.GPT,
    "seq2seq": seq2seq.SEQ2SEQ,
    "transformer": transformer.TRANSFORMER,
}
# Those, then the plugins installed under the entry-point group barkbench.models (barkbench/registry.py)
MODELS = Registry("model", Family, BUILT_IN)
DEFAULT_MODEL = "gpt"  # what a config without a `model.name` gets


def family_of(model_cfg) -> Family:
    return MODELS[model_cfg.name]


def build_model(model_cfg, vocab_size: int):
    return family_of(model_cfg).build(model_cfg, vocab_size)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
