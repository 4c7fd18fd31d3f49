"""A transformer encoder loop over pretrained weights that skips work as the knobs say.

`Block` is one pretrained layer (BERT's post-norm or DINOv2's pre-norm with layer scale)
whose FFN is a `MoEFFN`; after it, an optional EViT pruner and ToMe merger, then an exit
gate. `ConditionalEncoder.run` keeps only running examples and alive tokens in its tensors
and writes every token's last state back to its original position, so the output has the
input's shape: a dropped token keeps the state it had when dropped, a merged token takes
the final state of the token it merged into, an exited example keeps its last layer.

Legend: B - batch, S - input positions, b - running examples, s - alive rows, d - hidden,
h - heads.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from sample_models.conditional import (
    Active,
    ExitGate,
    Knobs,
    MoEFFN,
    TokenMerger,
    TokenPruner,
    attention_macs,
)
from sample_models.routing import compact, merge_rows


class Attention(nn.Module):
    """Multi-head self-attention over alive rows, with ToMe's proportional attention
    (log of the row's size added to its key logits; 0 when nothing merged)."""

    def __init__(self, q: nn.Linear, k: nn.Linear, v: nn.Linear, o: nn.Linear, n_heads: int):
        super().__init__()
        self.q, self.k, self.v, self.o = q, k, v, o
        self.n_heads = n_heads

    def forward(self, x: torch.Tensor, active: Active):
        b, s, d = x.shape
        h = self.n_heads

        def heads(t):  # [b, s, d] -> [b, h, s, d/h]
            return t.view(b, s, h, d // h).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        logits = (q @ k.transpose(-1, -2)) * (d // h) ** -0.5  # [b, h, s, s]
        bias = torch.where(active.valid, active.size.log(), float("-inf"))  # [b, s]
        probs = torch.softmax(logits + bias[:, None, None, :], dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(b, s, d)
        cls_attn = probs[:, :, 0, :].mean(1)  # [b, s] attention from the first row (CLS)
        return self.o(context), cls_attn


class Block(nn.Module):
    def __init__(self, layer: int, attention: Attention, norm1, norm2, moe: MoEFFN,
                 pre_norm: bool, scale1=None, scale2=None):
        super().__init__()
        self.attention, self.norm1, self.norm2, self.moe = attention, norm1, norm2, moe
        self.pre_norm = pre_norm
        self.scale1 = scale1 if scale1 is not None else nn.Identity()
        self.scale2 = scale2 if scale2 is not None else nn.Identity()
        self.prune: TokenPruner | None = None  # set by ConditionalEncoder.set_knobs
        self.merge: TokenMerger | None = None
        self.exit = ExitGate(layer)

    def forward(self, x, active: Active, knobs: Knobs):
        if self.pre_norm:  # DINOv2: x + ls1 * attn(norm1 x); x + ls2 * ffn(norm2 x)
            attended, cls_attn = self.attention(self.norm1(x), active)
            x = x + self.scale1(attended)
            x = x + self.scale2(self.moe(self.norm2(x), active, knobs))
        else:  # BERT: norm1(x + attn x); norm2(x + ffn x)
            attended, cls_attn = self.attention(x, active)
            x = self.norm1(x + attended)
            x = self.norm2(x + self.moe(x, active, knobs))
        return x, cls_attn


class EncoderResult(NamedTuple):
    states: torch.Tensor  # [B, S, d] each position's last state
    reached_end: torch.Tensor  # [B, S] bool: its state is the exit layer's (not dropped)
    exit_layer: torch.Tensor  # [B] last layer computed
    macs: torch.Tensor  # [B] multiply-adds spent (float64)
    dense_macs: torch.Tensor  # [B] multiply-adds of the dense model


class ConditionalEncoder(nn.Module):
    def __init__(self, blocks: list[Block], pooling: str, token_offset: int):
        super().__init__()
        self.layers = nn.ModuleList(blocks)
        self.pooling = pooling  # "mean" (sentence embedding) or "cls" (ViT)
        self.token_offset = token_offset
        self.knobs = Knobs()

    def set_knobs(self, knobs: Knobs) -> None:
        """Use `knobs`; pruners and mergers exist only in the layers the knobs name."""
        n = len(self.layers)
        for name, layers in (("prune_layers", knobs.prune_layers),
                             ("merge_layers", knobs.merge_layers)):
            bad = [i for i in layers if not 0 <= i < n - 1]
            if bad:
                raise ValueError(f"{name} {bad}: choose layers 0..{n - 2}")
        for i, block in enumerate(self.layers):
            block.prune = TokenPruner() if i in knobs.prune_layers else None
            block.merge = TokenMerger() if i in knobs.merge_layers else None
        self.knobs = knobs

    def pool(self, x, active: Active) -> torch.Tensor:  # [b, d]
        if self.pooling == "cls":
            return x[:, 0]
        weight = (active.size * active.valid)[..., None]
        return (x * weight).sum(1) / weight.sum(1).clamp(min=1e-9)

    def run(self, x: torch.Tensor, valid: torch.Tensor) -> EncoderResult:
        """x [B, S, d] embeddings, valid [B, S] real positions (False at padding)."""
        knobs = self.knobs
        batch, seq, d = x.shape
        positions = torch.arange(seq, device=x.device).expand(batch, seq)
        active = Active(torch.arange(batch, device=x.device), positions.masked_fill(~valid, -1),
                        torch.ones(batch, seq, dtype=x.dtype, device=x.device), batch,
                        self.token_offset)
        states = torch.zeros_like(x)  # [B, S, d]
        reached_end = torch.zeros_like(valid)  # [B, S]
        merged_into = positions.clone()  # [B, S] position each position's state comes from
        exit_layer = torch.full((batch,), len(self.layers) - 1, dtype=torch.long, device=x.device)
        macs = torch.zeros(batch, dtype=torch.float64, device=x.device)
        ffn_dense = 2 * d * sum(blk.moe.w1.shape[0] * blk.moe.w1.shape[1] for blk in self.layers)
        tokens = valid.sum(1)
        dense_macs = len(self.layers) * attention_macs(tokens, d) + tokens * ffn_dense
        previous = self.pool(x, active)
        streak = torch.zeros(batch, dtype=torch.long, device=x.device)
        last = len(self.layers) - 1
        for i, block in enumerate(self.layers):
            alive, rows = active.valid.sum(1), active.rows  # [b], [b]
            x, cls_attn = block(x, active, knobs)
            ran = block.moe.macs_per_token(knobs, block.moe.ran_top_k)  # what ran, edited or not
            macs[rows] += attention_macs(alive, d) + alive * ran
            if block.prune is not None:
                pruned = block.prune(cls_attn, active, knobs.keep_ratio)
                _store(states, x, active, pruned.dropped)
                x = x.gather(1, pruned.index[..., None].expand(-1, -1, d))
                active = active.take(pruned.index, pruned.real)
            if block.merge is not None:
                merge = block.merge(x, active, knobs.merge_count)
                x, mass = merge_rows(x, active.size, merge.merged, merge.target)
                src = active.pos[merge.merged]
                example = active.rows[:, None].expand_as(active.pos)[merge.merged]
                merged_into[example, src] = active.pos.gather(1, merge.target)[merge.merged]
                active.size = mass
                index, real = compact(active.valid & ~merge.merged)
                x = x.gather(1, index[..., None].expand(-1, -1, d))
                active = active.take(index, real)
            pooled = self.pool(x, active)
            gate = block.exit(pooled, previous, streak, active, knobs, i == last)
            if bool(gate.exiting.any()):
                finished = active.valid & gate.exiting[:, None]
                _store(states, x, active, finished)
                _store(reached_end, torch.ones_like(finished), active, finished)
                exit_layer[active.rows[gate.exiting]] = i
            running = (~gate.exiting).nonzero().squeeze(1)
            if running.numel() == 0:
                break
            x, previous, streak = x[running], pooled[running], gate.streak[running]
            active = active.select(running)
        for _ in range(len(knobs.merge_layers)):  # follow chains of merges to their end
            merged_into = merged_into.gather(1, merged_into)
        states = states.gather(1, merged_into[..., None].expand(-1, -1, d))
        reached_end = reached_end.gather(1, merged_into) & valid
        return EncoderResult(states, reached_end, exit_layer, macs, dense_macs)


def _store(states, x, active: Active, which: torch.Tensor) -> None:
    """Write rows `which` [b, s] of x [b, s, d] to their original positions in states."""
    example = active.rows[:, None].expand_as(active.pos)[which]
    states[example, active.pos[which]] = x[which]


def output_type(name: str, pooled: str) -> type:
    """The tuple a conditional encoder model returns: `pooled` [B, d] (its summary vector),
    last_hidden_state [B, S, d], exit_layer, macs and dense_macs (each [B])."""
    fields = [pooled, "last_hidden_state", "exit_layer", "macs", "dense_macs"]
    return NamedTuple(name, [(f, torch.Tensor) for f in fields])
