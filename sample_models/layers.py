"""Routing modules of the sample models (text-moe, glyph-vit), each returning its decision.

The algorithms live in `sample_models.routing` (pure tensor functions shared with the
pretrained models); these modules hold the parameters, call them, and return a NamedTuple,
so an adapter in `tracers/sample_layers.py` can read the decision from a forward hook:

- `SampleTopKRouter` / `MoEFeedForward`: top-k mixture-of-experts FFN (token choice) with
  the transformers-5 router triple and a Switch-style load-balancing loss.
- `MixtureOfDepthsRouter`: expert-choice capacity routing over tokens (top-k tokens by
  router score per example), plus the small causal predictor used for sampling.
- `TokenExitHead` (CALM-style, per token) and `ImageExitHead` (per image): early exit at a
  confidence threshold.
- `EViTPruner`: keep the top tokens by CLS attention; `ToMeMerger`: bipartite soft matching.

Positions: modules that may see a subset of the tokens take `positions` [b, s], each row's
position in the original [b, s] input (-1 for a row that is not a token, e.g. CLS or an
empty capacity slot), and return the positions of what they pass on.

Dimension legend: b - batch, s - tokens, t - b*s flattened, d - model width, e - experts,
k - top-k, c - capacity slots, r - merges, v - vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sample_models import routing
from sample_models.routing import gather_tokens


# --- mixture of experts ------------------------------------------------------------------
class SampleTopKRouter(nn.Module):
    """Token-choice top-k router; returns `(router_logits [t,e], top_k_weights [t,k],
    top_k_index [t,k])` like transformers 5 routers. Weights: softmax over the top-k logits."""

    def __init__(self, d_model: int, n_experts: int, top_k: int):
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.weight = nn.Parameter(torch.randn(n_experts, d_model) * d_model ** -0.5)

    def forward(self, x, positions=None):  # x [t, d]; positions [b, s] (read by the adapter)
        router_logits = F.linear(x, self.weight)  # [t, e]
        top_k_weights, top_k_index = routing.top_k_route(router_logits, self.top_k)  # [t, k]
        return router_logits, top_k_weights, top_k_index


class MoEOutput(NamedTuple):
    hidden: torch.Tensor  # [b, s, d]
    aux_loss: torch.Tensor  # scalar: load balancing (+ small z-loss)
    router_logits: torch.Tensor  # [t, e]
    top_k_weights: torch.Tensor  # [t, k]
    top_k_index: torch.Tensor  # [t, k]


class ExpertBank(nn.Module):
    """`n_experts` GELU MLPs as 3-D weights (one module, like transformers 5 experts)."""

    def __init__(self, n_experts: int, d_model: int, d_hidden: int):
        super().__init__()
        self.up = nn.Parameter(torch.randn(n_experts, d_model, d_hidden) * d_model ** -0.5)
        self.up_bias = nn.Parameter(torch.zeros(n_experts, d_hidden))
        self.down = nn.Parameter(torch.randn(n_experts, d_hidden, d_model) * d_hidden ** -0.5)
        self.down_bias = nn.Parameter(torch.zeros(n_experts, d_model))

    def forward(self, x, top_k_index, top_k_weights):  # x [t, d]; index, weights [t, k]
        out = torch.zeros_like(x)
        for e in range(self.up.shape[0]):
            rows, slot = (top_k_index == e).nonzero(as_tuple=True)  # tokens sent to e, rank
            if rows.numel():
                h = F.gelu(x[rows] @ self.up[e] + self.up_bias[e])  # [n, h]
                y = h @ self.down[e] + self.down_bias[e]  # [n, d]
                out.index_add_(0, rows, y * top_k_weights[rows, slot, None])
        return out


def load_balancing_loss(router_logits, top_k_index, n_experts: int, token_mask=None):
    """Switch-Transformer loss e * sum_e(fraction routed to e * mean router prob of e),
    1.0 when balanced; plus 1e-3 * router z-loss. token_mask [t] excludes padding."""
    probs = router_logits.softmax(dim=-1)  # [t, e]
    chosen = F.one_hot(top_k_index, n_experts).sum(dim=1).float()  # [t, e]
    if token_mask is not None:
        w = token_mask.float()[:, None]  # [t, 1]
        denom = w.sum().clamp(min=1.0)
        frac, mean_prob = (chosen * w).sum(0) / denom, (probs * w).sum(0) / denom
        z = (torch.logsumexp(router_logits, -1) ** 2 * w[:, 0]).sum() / denom
    else:
        frac, mean_prob = chosen.mean(0), probs.mean(0)
        z = (torch.logsumexp(router_logits, -1) ** 2).mean()
    frac = frac / top_k_index.shape[-1]
    return n_experts * (frac * mean_prob).sum() + 1e-3 * z


class MoEFeedForward(nn.Module):
    """Top-k MoE FFN: `router` picks k experts per token, outputs are gate-weighted sums."""

    def __init__(self, d_model: int, d_hidden: int, n_experts: int, top_k: int):
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.router = SampleTopKRouter(d_model, n_experts, top_k)
        self.experts = ExpertBank(n_experts, d_model, d_hidden)

    def forward(self, x, positions=None, token_mask=None) -> MoEOutput:
        b, s, d = x.shape
        flat = x.reshape(b * s, d)  # [t, d]
        router_logits, weights, index = self.router(flat, positions)
        out = self.experts(flat, index, weights)  # [t, d]
        mask = None if token_mask is None else token_mask.reshape(b * s)
        aux = load_balancing_loss(router_logits, index, self.n_experts, mask)
        return MoEOutput(out.reshape(b, s, d), aux, router_logits, weights, index)


# --- mixture of depths -------------------------------------------------------------------
class DepthRoute(NamedTuple):
    scores: torch.Tensor  # [b, s] router score per token
    selected: torch.Tensor  # [b, s] bool: the block computes this token
    index: torch.Tensor  # [b, c] positions of the selected tokens, ascending (0 where empty)
    slot_valid: torch.Tensor  # [b, c] bool: slot holds a selected token
    predictor_logits: torch.Tensor  # [b, s] causal predictor: "is this token in the top-k?"
    positions: torch.Tensor | None  # [b, s] original positions of the rows, or None


class MixtureOfDepthsRouter(nn.Module):
    """Expert-choice capacity routing (Mixture-of-Depths): per example, the block processes
    the ceil(capacity * n_tokens) tokens with the highest router score; the rest take the
    residual path. `use_predictor=True` selects by the causal predictor instead (logit > 0),
    which needs no future tokens and is what autoregressive sampling uses."""

    def __init__(self, d_model: int, capacity: float, predictor_hidden: int = 32):
        super().__init__()
        self.capacity = capacity
        self.score = nn.Linear(d_model, 1)
        self.predictor = nn.Sequential(nn.Linear(d_model, predictor_hidden), nn.SiLU(),
                                       nn.Linear(predictor_hidden, 1))

    def forward(self, x, token_mask=None, positions=None, use_predictor: bool = False) -> DepthRoute:
        b, s, _ = x.shape
        if token_mask is None:
            token_mask = torch.ones(b, s, dtype=torch.bool, device=x.device)
        scores = self.score(x).squeeze(-1)  # [b, s]
        predictor_logits = self.predictor(x.detach()).squeeze(-1)  # [b, s]
        if use_predictor:
            selected = (predictor_logits > 0) & token_mask
        else:
            selected = routing.top_fraction(scores, token_mask, self.capacity)  # [b, s]
        c = max(int(selected.sum(1).max()), 1)
        # selected positions first, in ascending position order (keeps attention causal)
        order = torch.where(selected, torch.arange(s, device=x.device), s + torch.arange(s, device=x.device))
        index = order.argsort(dim=1)[:, :c]  # [b, c]
        slot_valid = torch.gather(selected, 1, index)  # [b, c]
        index = torch.where(slot_valid, index, torch.zeros_like(index))
        return DepthRoute(scores, selected, index, slot_valid, predictor_logits, positions)


def predictor_loss(route: DepthRoute, token_mask=None):
    """BCE teaching the causal predictor which tokens the top-k router selected."""
    loss = F.binary_cross_entropy_with_logits(route.predictor_logits, route.selected.float(),
                                              reduction="none")  # [b, s]
    if token_mask is None:
        return loss.mean()
    return (loss * token_mask).sum() / token_mask.sum().clamp(min=1)


# --- early exit --------------------------------------------------------------------------
class TokenExit(NamedTuple):
    exit_now: torch.Tensor  # [b, s] bool: token exits at this layer (first confident layer)
    confidence: torch.Tensor  # [b, s] softmax max probability of this layer's prediction
    layer: int
    positions: torch.Tensor | None = None  # [b, s] original positions, if a subset


class TokenExitHead(nn.Module):
    """CALM-style per-token exit after block `layer`: confidence is the max softmax
    probability of the intermediate prediction; a token exits at the first layer where it
    reaches `threshold` (the last layer takes every token still running). Parameter-free:
    the logits come from the model's shared output head."""

    def __init__(self, layer: int, threshold: float, last: bool = False):
        super().__init__()
        self.layer, self.threshold, self.last = layer, threshold, last

    def forward(self, logits, exited, token_mask=None, positions=None) -> TokenExit:
        # logits [b, s, v], exited [b, s] bool (already exited), token_mask [b, s] bool
        confidence = routing.max_prob_confidence(logits)  # [b, s]
        exit_now = routing.exits_now(confidence >= self.threshold, exited, self.last)
        if token_mask is not None:
            exit_now = exit_now & token_mask
        return TokenExit(exit_now, confidence, self.layer, positions)


class ImageExit(NamedTuple):
    logits: torch.Tensor  # [b, classes]
    exit_now: torch.Tensor  # [b] bool
    confidence: torch.Tensor  # [b]
    layer: int


class ImageExitHead(nn.Module):
    """Per-image exit classifier on the CLS token after block `layer`."""

    def __init__(self, d_model: int, n_classes: int, layer: int, threshold: float,
                 last: bool = False):
        super().__init__()
        self.layer, self.threshold, self.last = layer, threshold, last
        self.norm = nn.LayerNorm(d_model)
        self.classify = nn.Linear(d_model, n_classes)

    def forward(self, cls, exited) -> ImageExit:  # cls [b, d], exited [b] bool
        logits = self.classify(self.norm(cls))  # [b, classes]
        confidence = routing.max_prob_confidence(logits)  # [b]
        exit_now = routing.exits_now(confidence >= self.threshold, exited, self.last)
        return ImageExit(logits, exit_now, confidence, self.layer)


# --- token pruning and merging (tokens [b, 1 + n, d], CLS first) -------------------------
class Pruned(NamedTuple):
    hidden: torch.Tensor  # [b, 1 + n_keep, d]
    positions: torch.Tensor  # [b, n_keep] original positions of the kept tokens
    kept: torch.Tensor  # [b, n] bool, over the tokens this module saw
    scores: torch.Tensor  # [b, n] CLS attention each token received
    seen_positions: torch.Tensor  # [b, n] original positions of the tokens it saw
    kept_index: torch.Tensor  # [b, n_keep] ascending indices (into the n tokens) kept


class EViTPruner(nn.Module):
    """EViT: keep the `keep_rate` fraction of tokens with the most CLS attention, drop the
    rest (no fused token). `cls_attention` [b, n] is the head-averaged attention from CLS."""

    def __init__(self, keep_rate: float):
        super().__init__()
        self.keep_rate = keep_rate

    def forward(self, hidden, cls_attention, positions) -> Pruned:
        every = torch.ones_like(cls_attention, dtype=torch.bool)  # [b, n]
        kept = routing.top_fraction(cls_attention, every, self.keep_rate)  # [b, n]
        top, _ = routing.compact(kept)  # [b, n_keep] ascending (same count in every row)
        tokens = gather_tokens(hidden[:, 1:], top)  # [b, n_keep, d]
        return Pruned(torch.cat([hidden[:, :1], tokens], 1), torch.gather(positions, 1, top),
                      kept, cls_attention, positions, top)


class Merged(NamedTuple):
    hidden: torch.Tensor  # [b, 1 + n - r, d]
    positions: torch.Tensor  # [b, n - r] original positions of the remaining tokens
    sizes: torch.Tensor  # [b, 1 + n - r] how many original tokens each row stands for
    source: torch.Tensor  # [b, r] original positions of the merged-away tokens
    target: torch.Tensor  # [b, r] original positions of the tokens they merged into
    similarity: torch.Tensor  # [b, r] cosine similarity of each merge


class ToMeMerger(nn.Module):
    """ToMe bipartite soft matching: tokens alternate into sets A and B; each A token's most
    similar B token (cosine of `metric`, e.g. attention keys) is its edge; the `r` strongest
    edges merge A into B by size-weighted average. CLS is never merged."""

    def __init__(self, r: int):
        super().__init__()
        self.r = r

    def forward(self, hidden, metric, positions, sizes) -> Merged:
        # hidden [b, 1+n, d], metric [b, n, m] (tokens only), positions [b, n], sizes [b, 1+n]
        in_a, in_b = routing.alternate_sets(torch.ones_like(positions, dtype=torch.bool))
        match = routing.bipartite_soft_matching(metric, self.r, in_a, in_b)
        tokens, tok_sizes = routing.merge_rows(hidden[:, 1:], sizes[:, 1:], match.merged,
                                               match.target)
        r = int(match.merged.sum(1).max())  # the same in every row
        # ToMe's layout: CLS, the unmerged A tokens, then every B token, each in order
        group = torch.where(in_b, 1, torch.where(match.merged, 2, 0))  # [b, n]
        rest = group.argsort(dim=1, stable=True)[:, :group.shape[1] - r]  # [b, n - r]
        # the merges, strongest first
        strength = match.similarity.masked_fill(~match.merged, float("-inf"))
        src = strength.argsort(dim=1, descending=True, stable=True)[:, :r]  # [b, r]
        return Merged(torch.cat([hidden[:, :1], gather_tokens(tokens, rest)], 1),
                      torch.gather(positions, 1, rest),
                      torch.cat([sizes[:, :1], torch.gather(tok_sizes, 1, rest)], 1),
                      torch.gather(positions, 1, src),
                      torch.gather(positions, 1, torch.gather(match.target, 1, src)),
                      torch.gather(match.similarity, 1, src))
