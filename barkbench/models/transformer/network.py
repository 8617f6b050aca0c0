"""BarkTransformer: an encoder–decoder transformer, the arrangement of "Attention is all you need"
with pre-norm blocks; and ReferenceTransformer, the same computation on torch.nn.Transformer,
the baseline `make bench` measures it against.

    embedding  tokens plus `model.positional`, as BarkGPT's (one vocabulary: source and target
               share the table, and each counts its positions from 0)
    encoder    pre-norm blocks of self-attention over the whole source, both ways, never at a
               pad; then a final norm
    decoder    pre-norm blocks of causal self-attention over the target, cross-attention to the
               encoder's output, feed-forward; a final norm and the head

Source and target together take the positions of one sequence of context_length, as a GPT's
prompt and answer do (room, state_bytes); the network itself refuses a source or a target
longer than that, which is all its position table holds.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from barkbench.models.attention import CrossAttention, MultiHeadAttention
from barkbench.models.gpt.network import Positions
from barkbench.models.parts import EncoderDecoder, cache_bytes, feed_forward, initialise, on_x, real_tokens


class EncoderBlock(nn.Module):
    """Pre-norm: x + self-attention(norm(x)) over every real source token, then x + feed-forward(norm(x))."""

    def __init__(self, cfg):
        super().__init__()
        E = cfg.embedding_dim
        self.norm1 = nn.LayerNorm(E)
        self.attn = MultiHeadAttention(E, cfg.heads, cfg.dropout, rope=cfg.positional == "rope", causal=False)
        self.norm2 = nn.LayerNorm(E)
        self.ffn = feed_forward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, key_mask):
        x = x + self.drop(self.attn(self.norm1(x), key_mask=key_mask)[0])
        return x + self.ffn(self.norm2(x))


class DecoderBlock(nn.Module):
    """Pre-norm: x + causal self-attention(norm(x)), x + cross-attention(norm(x)) to the source,
    then x + feed-forward(norm(x))."""

    def __init__(self, cfg):
        super().__init__()
        E = cfg.embedding_dim
        self.norm1 = nn.LayerNorm(E)
        self.attn = MultiHeadAttention(E, cfg.heads, cfg.dropout, rope=cfg.positional == "rope")
        self.norm2 = nn.LayerNorm(E)
        self.cross = CrossAttention(E, cfg.heads, cfg.dropout)
        self.norm3 = nn.LayerNorm(E)
        self.ffn = feed_forward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, memory, cache=None):
        a, cache = self.attn(self.norm1(x), cache)
        x = x + self.drop(a)
        x = x + self.drop(self.cross(self.norm2(x), memory))
        return x + self.ffn(self.norm3(x)), cache


class BarkTransformer(Positions, EncoderDecoder, nn.Module):
    """Its state is (position of the next target token, one self-attention key/value cache per
    decoder block, the source's keys and values for each block's cross-attention). The source's
    keys and values are computed once, by encode."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.embedding(cfg, vocab_size)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.layers))
        self.encoder_norm = nn.LayerNorm(cfg.embedding_dim)
        self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, vocab_size)
        initialise(self, cfg.init)

    def encode(self, source, lengths):
        key_mask = real_tokens(lengths, source.shape[1])
        x = self.drop(self.embed(source))
        for block in self.encoder:
            x = block(x, key_mask)
        x = self.encoder_norm(x)
        return 0, [None] * len(self.decoder), [block.cross.memory(x, key_mask) for block in self.decoder]

    def forward(self, target, state):
        past, caches, memories = state
        x = self.drop(self.embed(target, past))
        new_caches = []
        for block, cache, memory in zip(self.decoder, caches, memories):
            x, cache = block(x, memory, cache)
            new_caches.append(cache)
        return self.head(self.norm(x)), (past + target.shape[1], new_caches, memories)

    def teacher_forcing(self, x, answer_start):
        """As every encoder–decoder's (EncoderDecoder); and the self-attention weights kept for
        `inspect` put at x's positions, which it labels: an encoder layer's over the prompt, a
        decoder layer's over the answer (zero elsewhere)."""
        logits = super().teacher_forcing(x, answer_start)
        for blocks, source in ((self.encoder, True), (self.decoder, False)):
            for layer in (block.attn for block in blocks if block.attn.keep_weights):
                queries = on_x(layer.weights, answer_start, x.shape[1], source, 0.0, dim=2)
                layer.weights = on_x(queries, answer_start, x.shape[1], source, 0.0, dim=3)
        return logits

    def state_bytes(self, length: int | None = None) -> int:
        """Bytes of state per sequence once it has read `length` tokens (default context_length), as a
        GPT's cache is counted: a key and a value vector per position in every decoder block
        (cross-attention's for the source, self-attention's for the target), at length + 1
        positions, because the target starts with the source's last token, Assistant:, and keeps it twice."""
        return cache_bytes(
            len(self.decoder),
            (length or self.context_length) + 1,
            self.tok.embedding_dim,
            self.head.weight.element_size(),
        )

    def attention_layers(self) -> list:
        return [block.attn for block in self.encoder] + [block.attn for block in self.decoder]

    def alignment_layers(self) -> list:
        return [block.cross for block in self.decoder]

    def gradient_states(self, x, answer_start):
        """The residual stream entering every encoder block (over the prompt) and every decoder
        block (over the answer), as gpt's."""
        entering: dict[str, tuple[torch.Tensor, bool]] = {}

        def keep(name: str, source: bool):
            def hook(_module, args):
                args[0].retain_grad()
                entering[name] = args[0], source

            return hook

        sides = (("encoder", self.encoder, True), ("decoder", self.decoder, False))
        hooks = [
            block.register_forward_pre_hook(keep(f"{side} layer {i + 1}", source))
            for side, blocks, source in sides
            for i, block in enumerate(blocks)
        ]
        logits = self.teacher_forcing(x, answer_start)
        for hook in hooks:
            hook.remove()

        def read():
            nan = float("nan")
            return {
                n: on_x(s.grad.norm(dim=-1), answer_start, x.shape[1], source, nan)[0]
                for n, (s, source) in entering.items()
            }

        return logits, read


class ReferenceTransformer(Positions, EncoderDecoder, nn.Module):
    """BarkTransformer written on torch.nn.Transformer (norm_first=True, gelu): the same
    computation given the same weights (load_from). Without a key/value cache: its state is the
    encoder's output and the target so far, which every step reads again."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        if cfg.positional == "rope":
            raise ValueError("nn.Transformer has no rotary positions: its attention cannot rotate queries and keys")
        self.embedding(cfg, vocab_size)
        self.drop = nn.Dropout(cfg.dropout)
        with warnings.catch_warnings():
            # It warns at every construction that its nested-tensor fast path needs post-norm.
            warnings.filterwarnings("ignore", "enable_nested_tensor is True")
            self.transformer = nn.Transformer(
                cfg.embedding_dim,
                cfg.heads,
                cfg.layers,
                cfg.layers,
                cfg.ffn_dim,
                cfg.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
        self.head = nn.Linear(cfg.embedding_dim, vocab_size)

    def encode(self, source, lengths):
        real = real_tokens(lengths, source.shape[1])
        pads = None if real is None else ~real
        memory = self.transformer.encoder(self.drop(self.embed(source)), src_key_padding_mask=pads)
        return memory, pads, source[:, :0]

    def forward(self, target, state):
        memory, pads, before = state
        new, target = target.shape[1], torch.cat([before, target], 1)
        mask = nn.Transformer.generate_square_subsequent_mask(target.shape[1], device=target.device)
        x = self.drop(self.embed(target))
        x = self.transformer.decoder(x, memory, tgt_mask=mask, tgt_is_causal=True, memory_key_padding_mask=pads)
        return self.head(x[:, -new:]), (memory, pads, target)

    def load_from(self, model: BarkTransformer) -> None:
        """Take BarkTransformer's weights, block for block."""
        t = self.transformer
        pairs = [(self.tok, model.tok), (self.head, model.head), (t.encoder.norm, model.encoder_norm)]
        pairs += [(t.decoder.norm, model.norm)] + ([(self.pos, model.pos)] if self.positional == "learned" else [])
        for mine, theirs in zip(t.encoder.layers, model.encoder):
            pairs += [(mine.norm1, theirs.norm1), (mine.norm2, theirs.norm2)]
            pairs += [(mine.linear1, theirs.ffn[0]), (mine.linear2, theirs.ffn[2])]
            load_attention(mine.self_attn, [theirs.attn.qkv], theirs.attn.proj)
        for mine, theirs in zip(t.decoder.layers, model.decoder):
            pairs += [(mine.norm1, theirs.norm1), (mine.norm2, theirs.norm2), (mine.norm3, theirs.norm3)]
            pairs += [(mine.linear1, theirs.ffn[0]), (mine.linear2, theirs.ffn[2])]
            load_attention(mine.self_attn, [theirs.attn.qkv], theirs.attn.proj)
            load_attention(mine.multihead_attn, [theirs.cross.query, theirs.cross.kv], theirs.cross.proj)
        for mine, theirs in pairs:
            mine.load_state_dict(theirs.state_dict())


def load_attention(mine: nn.MultiheadAttention, in_proj: list[nn.Linear], out_proj: nn.Linear) -> None:
    """nn.MultiheadAttention's in_proj is our query, key and value projections stacked in that
    order (one fused qkv; or cross-attention's query and kv)."""
    with torch.no_grad():
        mine.in_proj_weight.copy_(torch.cat([p.weight for p in in_proj]))
        mine.in_proj_bias.copy_(torch.cat([p.bias for p in in_proj]))
    mine.out_proj.load_state_dict(out_proj.state_dict())
