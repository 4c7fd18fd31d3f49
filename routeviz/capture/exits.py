"""Exit heads registered with `routeviz.register_exit`: one exit row per unit.

Each such head records the units whose confidence passed its threshold (`valid` False
elsewhere), with no layer in `choice` (it does not know its own). At batch end this fills
`choice` with the head's layer and, where several heads would let the same unit exit
(models that compute every head for every unit), keeps only the first (lowest layer).
Runs on the device: no host sync.
"""

from __future__ import annotations

import torch


def resolve_exits(events: list) -> list:
    """events: [(site, RouteEvent)] of one batch; exit-head events get their layer as
    choice and lose the units that exited at an earlier head."""
    heads = [i for i, (site, event) in enumerate(events)
             if event.kind == "exit" and getattr(site.adapter, "first_exit", False)]
    if not heads:
        return events
    out = list(events)
    taken = {}  # (per_example, choice shape) -> bool tensor of units that already exited
    for i in sorted(heads, key=lambda i: (_layer(*events[i]), i)):
        site, event = events[i]
        layer = _layer(site, event)
        valid = (torch.ones(event.choice.shape, dtype=torch.bool, device=event.choice.device)
                 if event.valid is None else event.valid.to(torch.bool))
        key = (event.per_example, tuple(event.choice.shape))
        before = taken.get(key)
        taken[key] = valid if before is None else before | valid
        if before is not None:
            valid = valid & ~before
        out[i] = (site, event._replace(choice=torch.full_like(event.choice, layer),
                                       valid=valid, layer=layer))
    return out


def _layer(site, event) -> int:
    return site.layer if event.layer is None else int(event.layer)
