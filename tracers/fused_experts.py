"""Fallback for routers fused into their MoE block: read the routing from the arguments of
the experts module (`*Experts`, 3-D expert weights, called as `experts(hidden, top_k_index,
top_k_weights)` in transformers 5).

A forward pre-hook finds, among the arguments, an integer tensor [t, k] (expert ids) and a
float tensor of the same shape (gate weights); rank 0 = the largest weight. Used only where
no other site in the same block records the decision (a recognised router wins).
"""

from __future__ import annotations

from routeviz.registry import AdapterSpec, register_matcher
from routeviz.schema import RouteEvent
from tracers._contract import class_named, order_by, tensors

_named_experts = class_named(r"Experts$")


def is_fused_experts(module) -> bool:
    return _named_experts(module) and any(
        p.dim() == 3 for p in module.parameters(recurse=False))


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


def register() -> None:
    register_matcher("experts module called with (top_k_index, top_k_weights)",
                     is_fused_experts,
                     AdapterSpec(read_arguments, hook="pre", fallback=True, describe=describe))
