"""transformers 4.x-style MoE blocks whose router is a plain `nn.Linear` gate returning logits
(`mlp.gate`, `block_sparse_moe.gate`): top-k of the softmax, k read from the block.

Found when the trace starts, by contract: a block with an integer `top_k` or
`num_experts_per_tok` and exactly one plain `nn.Linear` child whose outputs equal the number
of experts (the block's `num_experts` / `num_local_experts` / `n_routed_experts`, or the
length of its expert list). Weights are the top-k softmax probabilities, renormalised to sum
to 1 unless the block says `norm_topk_prob = False` (Qwen2-MoE, OLMoE), as 4.x does.
Elsewhere, opt in with `routeviz.register_linear_gate(ModuleClassOrInstance, k=...)`.

Interventions: the gate's logits are edited (ablated experts -inf, a forced expert above the
best) and the block routes on them as it always does; k is the block's and is not changed.
"""

from __future__ import annotations

import torch
from torch import nn

from routeviz.capture.adapters.contract import AdapterSpec
from routeviz.capture.adapters.edits import Editor, check_top_k, edited_scores
from routeviz.store.schema import RouteEvent

_K_ATTRS = ("top_k", "num_experts_per_tok")
_E_ATTRS = ("num_experts", "num_local_experts", "n_routed_experts")


def linear_gate_adapter(k: int, normalize: bool = True) -> AdapterSpec:
    def read(module, inputs, output):
        logits = output  # [t, e] or [b, s, e]
        probs = torch.softmax(logits.float(), dim=-1)
        weight, index = probs.topk(k, dim=-1)  # [.., k], sorted
        if normalize:
            weight = weight / weight.sum(dim=-1, keepdim=True)
        return RouteEvent("expert", choice=index, weight=weight, logits=logits)

    def describe(module) -> dict:
        return {"n_experts": int(module.out_features), "top_k": int(k)}

    def edit(module, args, kwargs, output, plan):
        check_top_k(k, output.shape[-1], plan)
        return edited_scores(output, plan).to(output.dtype)

    return AdapterSpec(read, describe=describe,
                       edit=Editor(edit, frozenset({"ablate", "force"})))


def _int_attr(block, names):
    for name in names:
        value = getattr(block, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def linear_gates(block: nn.Module) -> dict | None:
    k = _int_attr(block, _K_ATTRS)
    if k is None:
        return None
    children = list(block.named_children())
    n_experts = _int_attr(block, _E_ATTRS) or next(
        (len(c) for _, c in children if isinstance(c, nn.ModuleList) and len(c) > 1), None)
    if n_experts is None or k > n_experts:
        return None
    gates = [name for name, child in children
             if type(child) is nn.Linear and child.out_features == n_experts]
    if len(gates) != 1:
        return None
    normalize = bool(getattr(block, "norm_topk_prob", True))
    return {gates[0]: linear_gate_adapter(k, normalize)}


def register(registry) -> None:
    registry.register_block("plain nn.Linear gate in a block with top_k", linear_gates)
