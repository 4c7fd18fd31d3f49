"""transformers 5 top-k routers: `(router_logits [t,e], top_k_weights [t,k], top_k_index [t,k])`.

Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V2/V3, GraniteMoE, Jamba, PhiMoE, GPT-OSS and
every later family whose router class is named `*TopKRouter` / `*TopkRouter` and returns
that triple. A module of such a name that returns something else is skipped with a warning
naming it, not misread.

Rank: the chosen experts are ordered by their router logit, so rank 0 is the top choice even
where the router's top-k is unsorted (DeepSeek-V2/V3 use `sorted=False`) or its weights are
not descending (PhiMoE's sparsemixer: the first pick is the argmax logit, the second the best
of the rest). DeepSeek-V3 picks on sigmoid + correction bias, group-limited; its weights (the
sigmoid scores, normalised, × routed_scaling_factor) are recorded as the router returns them.
Weights are never renormalised here: they sum as the family defines (1 for Mixtral, < 1 for
Qwen2-MoE without norm_topk_prob, routed_scaling_factor for DeepSeek-V3 ...).

Interventions (`routeviz.intervene`): for the softmax-then-top-k families (Mixtral,
Qwen2/3-MoE, OLMoE, GraniteMoE ...) the router's output is recomputed from its logits with
the ablated experts at -inf: softmax over all experts, top-k, renormalised exactly where the
family's own output was. The first call in a block checks that this recipe reproduces what
the router returned; a family that routes otherwise (DeepSeek's grouped sigmoid, PhiMoE's
sparsemixer) is refused with an error, not re-routed wrongly.
"""

from __future__ import annotations

import warnings

import torch

from routeviz.capture.adapters.contract import AdapterSpec, class_named, order_by
from routeviz.capture.adapters.edits import EXPERT_EDITS, Editor, check_top_k, edited_scores
from routeviz.errors import RoutevizError
from routeviz.store.schema import RouteEvent

is_topk_router = class_named(r"Top[Kk]Router$")


def topk_triple(output):
    """(logits, weights, index) if `output` is that triple, else None."""
    if (
        isinstance(output, tuple)
        and len(output) == 3
        and all(isinstance(t, torch.Tensor) for t in output)
        and not output[2].is_floating_point()
        and output[1].shape == output[2].shape
        and output[0].shape[:-1] == output[2].shape[:-1]
    ):
        return output
    return None


def read_topk(module, inputs, output):
    triple = topk_triple(output)
    if triple is None:
        warnings.warn(
            f"routeviz: {type(module).__name__} looks like a top-k router but did not return "
            "(router_logits, top_k_weights, top_k_index); its decisions are not recorded"
        )
        return None
    logits, weights, index = triple  # [t, e], [t, k], [t, k]
    chosen_logits = logits.gather(-1, index)  # [t, k]
    index, weights = order_by(chosen_logits, index, weights)
    return RouteEvent("expert", choice=index, weight=weights, logits=logits)


def describe_router(module) -> dict:
    n_experts = getattr(module, "num_experts", None)
    weight = getattr(module, "weight", None)
    if n_experts is None and isinstance(weight, torch.Tensor) and weight.dim() == 2:
        n_experts = int(weight.shape[0])
    top_k = getattr(module, "top_k", None)
    return {key: int(v) for key, v in (("n_experts", n_experts), ("top_k", top_k))
            if isinstance(v, int)}


def softmax_top_k(logits, k: int, renormalise: bool):
    """(weights [t, k], index [t, k]): the Mixtral / Qwen-MoE / OLMoE routing of `logits`."""
    weights, index = torch.softmax(logits.float(), dim=-1).topk(k, dim=-1)
    if renormalise:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, index


def _family_renormalises(module, logits, weights, index) -> bool:
    """Does the router renormalise its top-k softmax? Read from what it returned; raises
    where neither variant reproduces it."""
    got = weights.float().gather(-1, index.argsort(-1))
    for renormalise in (True, False):
        w, i = softmax_top_k(logits, index.shape[-1], renormalise)
        if torch.equal(i.sort(-1).values, index.sort(-1).values) and torch.allclose(
                w.gather(-1, i.argsort(-1)), got, rtol=1e-2, atol=1e-3):
            return renormalise
    raise RoutevizError(f"{type(module).__name__} does not route by softmax then top-k; "
                        "routeviz cannot re-route it for an intervention")


def edit_topk(module, args, kwargs, output, plan):
    triple = topk_triple(output)
    if triple is None:
        return None
    logits, weights, index = triple  # [t, e], [t, k], [t, k]
    if "renormalise" not in plan.memo:  # checked once per block (it reads the device)
        plan.memo["renormalise"] = _family_renormalises(module, logits, weights, index)
    renormalise = plan.memo["renormalise"]
    k = plan.top_k or index.shape[-1]
    check_top_k(k, logits.shape[-1], plan)
    edited = edited_scores(logits, plan)
    new_weights, new_index = softmax_top_k(edited, k, renormalise)
    return edited, new_weights.to(weights.dtype), new_index.to(index.dtype)


TOPK_ROUTER = AdapterSpec(read_topk, describe=describe_router,
                          edit=Editor(edit_topk, can=EXPERT_EDITS))


def register(registry) -> None:
    registry.register_matcher("transformers *TopKRouter", is_topk_router, TOPK_ROUTER)
