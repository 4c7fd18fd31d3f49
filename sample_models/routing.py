"""The routing algorithms of every sample and pretrained model, once, as pure tensor functions.

In the style of ToMe's `merge.py`: tensors in, tensors out, no state, no modules. The
modules that models hold and tracers hook (`sample_models.layers` for text-moe and
glyph-vit, `sample_models.conditional` for minilm-moe and dinov2-small) only lay these
decisions out for their model and their adapter.

- `top_k_route`: token-choice top-k over router scores (MoE).
- `top_fraction`: per example, the ceil(fraction * candidates) rows with the highest score
  (mixture-of-depths capacity routing, EViT pruning by CLS attention).
- `bipartite_soft_matching` + `merge_rows`: ToMe token merging.
- `max_prob_confidence` + `exits_now`: early exit at the first confident layer.

Dimension legend: b - batch, s - rows (tokens), d - width, e - experts, k - top-k,
m - metric width.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


# --- mixture of experts ------------------------------------------------------------------
def top_k_route(scores, k: int, weighting: str = "softmax"):
    """Top-k experts per row of `scores` [.., e] -> (weights [.., k], index [.., k]), best
    first. weighting "softmax": softmax over the k chosen scores (transformers routers);
    "share": each chosen score's share of the positive score mass (MoEfication norms)."""
    top, index = scores.topk(k, dim=-1)  # [.., k]
    if weighting == "softmax":
        return top.softmax(dim=-1), index
    if weighting == "share":
        total = scores.clamp(min=0).sum(-1, keepdim=True).clamp(min=1e-9)
        return top.clamp(min=0) / total, index
    raise ValueError(f"weighting {weighting!r}: choose softmax, share")


# --- selection: mixture of depths, EViT ----------------------------------------------------
def top_fraction(scores, candidates, fraction: float):
    """Rows selected [b, s] bool: per example, the ceil(fraction * n) candidates with the
    highest score (at least one), n the example's number of candidates [b, s] bool.
    Ties keep the earlier row."""
    n_keep = torch.ceil(candidates.sum(1).float() * fraction).long().clamp(min=1)  # [b]
    ranked = scores.masked_fill(~candidates, float("-inf")).argsort(dim=1, descending=True,
                                                                     stable=True)
    rank = ranked.argsort(dim=1)  # [b, s] rank of each row
    return candidates & (rank < n_keep[:, None])


def compact(keep):
    """Row order [b, s'] that moves kept rows [b, s] to the front (in their order), and
    which of the s' = most kept rows are real [b, s']."""
    counts = keep.sum(1)  # [b]
    width = int(counts.max()) if keep.numel() else 0
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]
    real = torch.arange(width, device=keep.device)[None, :] < counts[:, None]
    return order, real


def gather_tokens(x, index):  # x [b, s, d], index [b, c] -> [b, c, d]
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))


def scatter_add_tokens(x, index, update, slot_valid):  # adds update [b, c, d] at index
    update = update * slot_valid[..., None]
    return x.scatter_add(1, index[..., None].expand(-1, -1, x.shape[-1]), update)


# --- token merging (ToMe) ----------------------------------------------------------------
class Matching(NamedTuple):
    merged: torch.Tensor  # [b, s] bool: row merges away (into `target`)
    target: torch.Tensor  # [b, s] row it merges into (itself where not merged)
    similarity: torch.Tensor  # [b, s] cosine similarity to its best partner (-inf: none)


def bipartite_soft_matching(metric, r: int, in_a, in_b) -> Matching:
    """ToMe: each row of set A (`in_a` [b, s]) points at its most similar row of set B
    (`in_b`) by cosine of `metric` [b, s, m]; per example the r strongest edges merge, at
    most min(|A|, |B|). Rows in neither set never merge nor receive."""
    b, s, _ = metric.shape
    rows = torch.arange(s, device=metric.device)
    metric = F.normalize(metric, dim=-1)
    sim = metric @ metric.transpose(1, 2)  # [b, s, s]
    sim = sim.masked_fill(~(in_a[:, :, None] & in_b[:, None, :]), float("-inf"))
    best, target = sim.max(-1)  # [b, s]
    n_merge = torch.minimum(in_a.sum(1), in_b.sum(1)).clamp(max=r)  # [b]
    rank = best.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
    merged = in_a & (rank < n_merge[:, None]) & torch.isfinite(best)
    target = torch.where(merged, target, rows[None, :].expand(b, s))
    return Matching(merged, target, best)


def alternate_sets(valid, first: int = 0):
    """ToMe's split: rows first, first+2, ... are set A, the rows between set B (only
    `valid` rows [b, s] belong to either)."""
    odd = (torch.arange(valid.shape[1], device=valid.device) % 2 == 1)[None, :]
    in_a = valid & (odd if first else ~odd)
    return in_a, valid & ~in_a


def merge_rows(x, size, merged, target):
    """Size-weighted average of each target row with the rows merged into it: x [b, s, d]
    and the new sizes [b, s] (merged-away rows keep stale values; drop them)."""
    weighted = x * size[..., None]
    total = weighted.masked_fill(merged[..., None], 0).scatter_add(
        1, target[..., None].expand_as(x), weighted.masked_fill(~merged[..., None], 0))
    mass = size.masked_fill(merged, 0).scatter_add(1, target, size.masked_fill(~merged, 0))
    return total / mass.clamp(min=1e-9)[..., None], mass


# --- early exit --------------------------------------------------------------------------
def max_prob_confidence(logits):
    """CALM confidence [..]: the max softmax probability of a prediction [.., v]."""
    return logits.float().softmax(-1).amax(-1)


def exits_now(confident, exited=None, last: bool = False):
    """Units exiting at this layer: confident ones (every one at the last layer) that have
    not exited before (`exited`, same shape, bool)."""
    now = torch.ones_like(confident, dtype=torch.bool) if last else confident
    return now if exited is None else now & ~exited
