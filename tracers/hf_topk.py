"""transformers 5 top-k routers: `(router_logits [t,e], top_k_weights [t,k], top_k_index [t,k])`.

Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE and every later family whose router class is named
`*TopKRouter` / `*TopkRouter` and returns that triple. A module of such a name that returns
something else is skipped with a warning naming it, not misread.
"""

from __future__ import annotations

import re
import warnings

import torch

from routeviz.registry import register_matcher
from routeviz.schema import RouteEvent

_TOPK_ROUTER = re.compile(r"Top[Kk]Router$")
_warned: set[str] = set()


def is_topk_router(module) -> bool:
    return bool(_TOPK_ROUTER.search(type(module).__name__))


def topk_triple(module, inputs, output):
    """Read the (logits, weights, index) triple; None (with one warning) if it is not one."""
    if (
        isinstance(output, tuple)
        and len(output) == 3
        and all(isinstance(t, torch.Tensor) for t in output)
        and not output[2].is_floating_point()
        and output[1].shape == output[2].shape
    ):
        logits, weights, index = output
        return RouteEvent("expert", choice=index, weight=weights, logits=logits)
    name = type(module).__name__
    if name not in _warned:
        _warned.add(name)
        warnings.warn(
            f"routeviz: {name} looks like a top-k router but did not return "
            "(router_logits, top_k_weights, top_k_index); its decisions are not recorded"
        )
    return None


def register() -> None:
    register_matcher("transformers *TopKRouter", is_topk_router, topk_triple)
