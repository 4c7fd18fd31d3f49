"""Fallback for routers fused into their MoE block: read the routing from the call of the
experts module, `experts(hidden, top_k_index, top_k_weights)` in transformers 5.

Found by that call, not by how the module stores its weights (3-D parameters, a child
module holding them, 2-D views ...): a candidate is a module whose `forward` names a
`top_k_index` argument, or a `*Experts` class whose `forward` takes at least three
arguments. A forward pre-hook then looks among the arguments of each call for an integer
tensor [t, k] (expert ids) and a float tensor of the same shape (gate weights); a call
without them records nothing. Rank 0 = the largest weight. Used only where no other site in
the same block records the decision (a recognised router wins).
"""

from __future__ import annotations

import functools
import inspect

from routeviz.capture.adapters.contract import AdapterSpec, class_named, order_by, tensors
from routeviz.store.schema import RouteEvent

_named_experts = class_named(r"Experts$")
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@functools.cache
def _forward_arguments(cls: type) -> tuple[set, int]:
    """(argument names, how many positional arguments after self; 99 for *args)."""
    try:
        params = list(inspect.signature(cls.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return set(), 0
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return {p.name for p in params}, 99
    return {p.name for p in params}, sum(p.kind in _POSITIONAL for p in params)


def takes_routing(module) -> bool:
    """Can this module be called as experts(hidden, top_k_index, top_k_weights)?"""
    names, positional = _forward_arguments(type(module))
    return "top_k_index" in names or (_named_experts(module) and positional >= 3)


def routing_arguments(args, kwargs):
    """(index, weights) from an experts call, or None."""
    if "top_k_index" in kwargs and "top_k_weights" in kwargs:
        return kwargs["top_k_index"], kwargs["top_k_weights"]
    found = tensors(list(args) + list(kwargs.values()))
    for index in found:
        if index.is_floating_point() or index.dim() < 2:
            continue
        for weights in found:
            if weights.is_floating_point() and weights.shape == index.shape:
                return index, weights
    return None


def read_arguments(module, args, kwargs):
    routing = routing_arguments(args, kwargs)
    if routing is None:
        return None
    index, weights = routing  # [t, k], [t, k]
    index, weights = order_by(weights, index, weights)
    return RouteEvent("expert", choice=index, weight=weights)


def describe(module) -> dict:
    n_experts = getattr(module, "num_experts", None)
    return {"n_experts": int(n_experts), "read_from": "experts arguments"} if isinstance(
        n_experts, int) else {"read_from": "experts arguments"}


def register(registry) -> None:
    registry.register_matcher(
        "experts module called with (hidden, top_k_index, top_k_weights)", takes_routing,
        AdapterSpec(read_arguments, hook="pre", fallback=True, describe=describe))
