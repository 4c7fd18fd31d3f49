"""Early exit heads registered with `routeviz.register_exit(ModuleClassOrInstance, ...)`.

The decision is read from the head's output (a tensor, or a tuple whose first tensor is it):
[b, s, c] per token or [b, c] per example (per_example=None guesses from the rank). Its
confidence is `confidence(output)` if given, else sigmoid for one output channel and the
max softmax probability for several. A unit exits at the first registered head (lowest
layer) where confidence >= threshold; a head registered with `final=True` takes every unit
still running, so each unit gets exactly one `exit` row (choice = that head's layer,
weight = its confidence there).
"""

from __future__ import annotations

import torch

from routeviz.capture.adapters.contract import AdapterSpec, tensors
from routeviz.store.schema import RouteEvent


def default_confidence(output):
    if output.shape[-1] == 1:
        return torch.sigmoid(output.float())[..., 0]
    return torch.softmax(output.float(), dim=-1).amax(dim=-1)


def exit_adapter(threshold: float = 0.9, confidence=None, final: bool = False,
                 per_example: bool | None = None) -> AdapterSpec:
    score = confidence or default_confidence

    def read(module, inputs, output):
        found = tensors(output)
        if not found:
            return None
        head = found[0]  # [b, s, c] or [b, c]
        example_level = head.dim() == 2 if per_example is None else per_example
        conf = score(head).float().unsqueeze(-1)  # [b, s, 1] or [b, 1]
        exits = torch.ones_like(conf, dtype=torch.bool) if final else conf >= threshold
        # choice is filled with this head's layer by routeviz.capture.exits.resolve_exits
        where = torch.full(conf.shape, -1, dtype=torch.int32, device=conf.device)
        return RouteEvent("exit", choice=where, weight=conf, valid=exits,
                          per_example=example_level)

    return AdapterSpec(read, first_exit=True)
