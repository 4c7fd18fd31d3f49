"""Modules that select a subset of tokens: mixture-of-depths routers (top-capacity selection
over tokens) and token pruning (modules that return the kept token indices).

Register with `routeviz.register_selection(ModuleClassOrInstance)`. The output (a tuple, or a
tensor) holds an integer tensor [b, c] of kept positions among the s tokens the module saw
(s read from its first input with a sequence axis); a float tensor [b, c] beside it is read
as the kept tokens' scores, a float [b, s] as every token's score. One `keep` row per token
seen: 1 selected, 0 skipped or dropped.
"""

from __future__ import annotations

import torch

from routeviz.capture.adapters.contract import tensors
from routeviz.store.schema import RouteEvent


def _tokens_seen(inputs):
    for t in tensors(inputs):
        if t.dim() >= 2:
            return int(t.shape[1])
    return None


def selection_adapter(module, inputs, output):
    found = tensors(output)
    kept = next((t for t in found if not t.is_floating_point() and t.dim() == 2), None)
    s = _tokens_seen(inputs)
    if kept is None or s is None:
        return None
    b = kept.shape[0]
    choice = torch.zeros((b, s), dtype=torch.int32, device=kept.device)  # [b, s]
    choice.scatter_(1, kept.long(), 1)
    weight = torch.full((b, s), float("nan"), device=kept.device)
    for score in found:
        if score.is_floating_point() and score.shape == (b, s):
            weight = score.float()
        elif score.is_floating_point() and score.shape == kept.shape:
            weight = weight.scatter(1, kept.long(), score.float())
    return RouteEvent("keep", choice=choice.unsqueeze(-1), weight=weight.unsqueeze(-1))
