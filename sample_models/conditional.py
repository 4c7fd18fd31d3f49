"""Training-free routing modules for pretrained encoders (minilm-moe, dinov2-small).

Each module computes one kind of decision with the shared algorithms of
`sample_models.routing` and returns it with a `Decision` record, already laid out over the
whole batch ([B, s, k], examples that exited earlier marked invalid), so the adapter in
`tracers/sample_layers.py` only renames fields.

- `MoEFFN` + `ExpertRouter`: an FFN split into experts (see moefication.py); each token runs
  its top-k experts, ranked by the norm of their activation ("norm") or by MoEfication's
  similarity to the expert's mean fc1 row ("centroid", cheap).
- `TokenPruner`: EViT — keep the tokens the CLS token attends to most.
- `TokenMerger`: ToMe bipartite soft matching — merge the r most similar tokens.
- `ExitGate`: stop an example once its pooled representation stops changing.

Legend: B - batch, b - examples still running, s - rows (tokens still alive), d - hidden,
e - experts, m - neurons per expert, k - top-k, n - tokens flattened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import nn

from sample_models import routing

SKIP = -(2**31)  # routeviz.schema.SKIP: an entry not to record


@dataclass(frozen=True)
class Knobs:
    """How much conditional computation to do; `dense(n_experts)` turns all of it off."""

    top_k: int = 4  # experts run per token and layer
    router: str = "norm"  # "norm": top-k by activation norm (fc1 runs in full) | "centroid"
    keep_ratio: float = 1.0  # EViT: fraction of non-CLS tokens kept at each prune layer
    prune_layers: tuple = ()  # layers after whose attention pruning happens
    merge_count: int = 0  # ToMe r: tokens merged away per example at each merge layer
    merge_layers: tuple = ()  # layers after which merging happens
    exit_threshold: float | None = None  # cosine of pooled reps that counts as stable
    exit_patience: int = 1  # consecutive stable layers before an example exits

    def dense(self, n_experts: int) -> Knobs:
        return replace(self, top_k=n_experts, keep_ratio=1.0, merge_count=0, exit_threshold=None)

    def as_dict(self) -> dict:
        return {"top_k": self.top_k, "router": self.router, "keep_ratio": self.keep_ratio,
                "prune_layers": list(self.prune_layers), "merge_count": self.merge_count,
                "merge_layers": list(self.merge_layers), "exit_threshold": self.exit_threshold,
                "exit_patience": self.exit_patience}


class Decision(NamedTuple):
    """One module's decisions over the whole batch (the adapter makes a RouteEvent of it)."""

    kind: str  # expert | keep | merge | exit
    choice: torch.Tensor  # [B, s, k] (per_example: [B, 1])
    weight: torch.Tensor  # same shape
    valid: torch.Tensor  # same shape, bool
    token_index: torch.Tensor | None = None  # [B, s] original token id per row, -1 none
    per_example: bool = False


@dataclass
class Active:
    """The rows still running: which examples, which original positions, how many tokens
    each row stands for (after merges)."""

    rows: torch.Tensor  # [b] index into the batch
    pos: torch.Tensor  # [b, s] original position in the input, -1 for an empty row
    size: torch.Tensor  # [b, s] float, tokens merged into the row (1 = itself)
    batch_size: int  # B
    token_offset: int  # token id = position - offset (1 for a ViT's CLS, 0 for text)

    @property
    def valid(self) -> torch.Tensor:  # [b, s]
        return self.pos >= 0

    def token_index(self) -> torch.Tensor:  # [B, s]
        ids = torch.where(self.valid, self.pos - self.token_offset, torch.full_like(self.pos, -1))
        return full_batch(ids, self.rows, self.batch_size, -1)

    def take(self, index: torch.Tensor, keep: torch.Tensor) -> Active:
        """Rows `index` [b, s'] of each example; `keep` [b, s'] says which are real."""
        pos = self.pos.gather(1, index).masked_fill(~keep, -1)
        return Active(self.rows, pos, self.size.gather(1, index), self.batch_size,
                      self.token_offset)

    def select(self, examples: torch.Tensor) -> Active:
        """Only the examples `examples` [b'] (indices into the running ones)."""
        return Active(self.rows[examples], self.pos[examples], self.size[examples],
                      self.batch_size, self.token_offset)


def full_batch(t: torch.Tensor, rows: torch.Tensor, batch_size: int, fill) -> torch.Tensor:
    """[b, ...] running examples -> [B, ...], `fill` for examples no longer running."""
    out = t.new_full((batch_size,) + tuple(t.shape[1:]), fill)
    out[rows] = t
    return out


def per_row(values: torch.Tensor, valid: torch.Tensor, fill) -> torch.Tensor:
    """[n, k] values of the valid rows -> [b, s, k], `fill` elsewhere."""
    out = values.new_full(tuple(valid.shape) + (values.shape[-1],), fill)
    out[valid] = values
    return out


class ExpertChoice(NamedTuple):
    index: torch.Tensor  # [n, k] expert ids, best first
    decision: Decision


class ExpertRouter(nn.Module):
    """Top-k of expert scores; records expert id and its share of the score mass."""

    def forward(self, scores: torch.Tensor, top_k: int, active: Active) -> ExpertChoice:
        share, index = routing.top_k_route(scores, top_k, weighting="share")  # [n, k]
        valid = active.valid
        choice = full_batch(per_row(index.to(torch.int32), valid, SKIP), active.rows,
                            active.batch_size, SKIP)  # [B, s, k]
        weight = full_batch(per_row(share, valid, 0.0), active.rows, active.batch_size, 0.0)
        decision = Decision("expert", choice, weight, choice != SKIP, active.token_index())
        return ExpertChoice(index, decision)


class MoEFFN(nn.Module):
    """A dense FFN (fc1 -> act -> fc2) cut into experts that run only for their tokens.

    `fc1`/`fc2` are the pretrained layers (shared, not copied); `w1`, `b1`, `w2` hold the
    same weights regrouped by expert. When every expert is chosen the FFN runs as the
    original layers do, so the dense setting reproduces the original output bit for bit.
    """

    def __init__(self, fc1: nn.Linear, fc2: nn.Linear, act, labels: torch.Tensor,
                 n_experts: int):
        super().__init__()
        from sample_models.moefication import expert_order, split_ffn

        self.n_experts = n_experts
        self.fc1, self.fc2, self.act = fc1, fc2, act
        w1, b1, w2 = split_ffn(fc1.weight.detach(), fc1.bias.detach(), fc2.weight.detach(),
                               labels, n_experts)
        self.register_buffer("order", expert_order(labels), persistent=False)  # [n]
        self.register_buffer("w1", w1, persistent=False)  # [e, m, d]
        self.register_buffer("b1", b1, persistent=False)  # [e, m]
        self.register_buffer("w2", w2, persistent=False)  # [e, d, m]
        self.register_buffer("centroid_w", w1.mean(1), persistent=False)  # [e, d]
        self.register_buffer("centroid_b", b1.mean(1), persistent=False)  # [e]
        self.router = ExpertRouter()
        self.ran_top_k: int | None = None  # experts per token in the last forward

    def forward(self, x: torch.Tensor, active: Active, knobs: Knobs) -> torch.Tensor:
        tokens = x[active.valid]  # [n, d]
        e, m, _ = self.w1.shape
        k = min(knobs.top_k, e)
        full = hidden = None  # [n, e*m] / [n, e, m] activations (original / expert order)
        if knobs.router == "norm" or k == e:
            full = self.act(self.fc1(tokens))
            hidden = full[:, self.order].reshape(-1, e, m)
            scores = hidden.norm(dim=-1)  # [n, e]
        else:
            scores = tokens @ self.centroid_w.T + self.centroid_b  # [n, e]
        index = self.router(scores, k, active).index  # [n, k'] (an intervention may set k')
        # the experts that ran, for the compute count: the router's k', not the knob's k
        self.ran_top_k = index.shape[-1]
        if index.shape[-1] == e and full is not None:
            out = self.fc2(full)
        else:
            out = torch.zeros_like(tokens)
            for expert in range(e):
                picked = (index == expert).any(-1).nonzero().squeeze(1)  # [n_e]
                if picked.numel() == 0:
                    continue
                if hidden is not None:
                    h = hidden[picked, expert]  # [n_e, m]
                else:
                    h = self.act(tokens[picked] @ self.w1[expert].T + self.b1[expert])
                out.index_add_(0, picked, h @ self.w2[expert].T)
            out = out + self.fc2.bias
        result = torch.zeros_like(x)
        result[active.valid] = out
        return result

    def macs_per_token(self, knobs: Knobs, top_k: int | None = None) -> float:
        """Multiply-adds per token for these knobs (dense FFN: 2 * d * n); top_k: the
        experts that ran per token where it differs from the knob's (`ran_top_k` after a
        forward under an intervention)."""
        e, m, d = self.w1.shape
        k = min(knobs.top_k if top_k is None else top_k, e)
        if knobs.router == "norm":
            return d * e * m + d * k * m
        return d * e + 2 * d * k * m


class PruneOutput(NamedTuple):
    index: torch.Tensor  # [b, s'] rows to keep, in order
    real: torch.Tensor  # [b, s'] which of them are tokens
    dropped: torch.Tensor  # [b, s] rows dropped now
    decision: Decision


class TokenPruner(nn.Module):
    """EViT: keep the ceil(ratio * n) non-CLS tokens with the most CLS attention."""

    def forward(self, cls_attn: torch.Tensor, active: Active, keep_ratio: float) -> PruneOutput:
        valid = active.valid  # [b, s]
        is_cls = valid & (active.pos == 0)
        candidates = valid & ~is_cls
        kept = routing.top_fraction(cls_attn, candidates, keep_ratio) | is_cls  # [b, s]
        index, real = routing.compact(kept)
        choice = full_batch(per_row(kept[valid].to(torch.int32)[:, None], valid, SKIP),
                            active.rows, active.batch_size, SKIP)  # [B, s, 1]
        weight = full_batch(cls_attn[..., None], active.rows, active.batch_size, 0.0)
        decision = Decision("keep", choice, weight, choice != SKIP, active.token_index())
        return PruneOutput(index, real, valid & ~kept, decision)


class MergeOutput(NamedTuple):
    merged: torch.Tensor  # [b, s] rows merged away now
    target: torch.Tensor  # [b, s] row each merged-away row went into (else itself)
    decision: Decision


class TokenMerger(nn.Module):
    """ToMe bipartite soft matching on cosine similarity of the hidden states: odd rows
    (set A) each point at their most similar even row (set B, CLS excluded); the r best
    pairs per example merge, A into B."""

    def forward(self, x: torch.Tensor, active: Active, r: int) -> MergeOutput:
        # set A: odd rows, set B: even rows, CLS (row 0) in neither
        in_a, in_b = routing.alternate_sets(active.valid & (active.pos != 0), first=1)
        merged, target, best = routing.bipartite_soft_matching(x, r, in_a, in_b)
        to_pos = active.pos.gather(1, target) - active.token_offset
        choice = full_batch(torch.where(merged, to_pos, SKIP)[..., None].to(torch.int32),
                            active.rows, active.batch_size, SKIP)  # [B, s, 1]
        weight = full_batch(torch.where(merged, best, 0.0)[..., None], active.rows,
                            active.batch_size, 0.0)
        decision = Decision("merge", choice, weight, choice != SKIP, active.token_index())
        return MergeOutput(merged, target, decision)


class ExitOutput(NamedTuple):
    exiting: torch.Tensor  # [b] bool
    streak: torch.Tensor  # [b] consecutive stable layers
    decision: Decision


class ExitGate(nn.Module):
    """Patience-style early exit: an example stops once cos(pooled_l, pooled_l-1) >=
    threshold for `patience` layers in a row; at the last layer every example stops.
    Records one row per example, at the layer it stops (choice = that layer)."""

    def __init__(self, layer: int):
        super().__init__()
        self.layer = layer

    def forward(self, pooled, previous, streak, active: Active, knobs: Knobs,
                last: bool) -> ExitOutput:
        cosine = nn.functional.cosine_similarity(pooled, previous, dim=-1)  # [b]
        if knobs.exit_threshold is None:
            streak = torch.zeros_like(streak)
        else:
            streak = torch.where(cosine >= knobs.exit_threshold, streak + 1, 0)
        exiting = routing.exits_now(streak >= max(knobs.exit_patience, 1), last=last)
        choice = full_batch(torch.full_like(streak, self.layer, dtype=torch.int32)[:, None],
                            active.rows, active.batch_size, SKIP)  # [B, 1]
        valid = full_batch(exiting[:, None], active.rows, active.batch_size, False)
        weight = full_batch(cosine[:, None], active.rows, active.batch_size, 0.0)
        return ExitOutput(exiting, streak, Decision("exit", choice, weight, valid,
                                                    per_example=True))


def attention_macs(tokens: torch.Tensor, d: int) -> torch.Tensor:
    """Multiply-adds of one attention layer for `tokens` [b] tokens per example."""
    t = tokens.to(torch.float64)
    return 4 * t * d * d + 2 * t * t * d
