"""Shared-expert gates (Qwen2-MoE): a `Linear(hidden, 1)` beside a top-k router whose
sigmoid scales an always-on shared expert.

Recorded as its own site (`...mlp.shared_expert_gate`), kind `keep`: choice 1 (the shared
expert always runs), weight = sigmoid(gate), the share of the shared expert's output that
reaches the residual. Recognised by contract: a block holding a top-k router and exactly one
plain `nn.Linear` with one output.
"""

from __future__ import annotations

import torch
from torch import nn

from routeviz.capture.adapters.contract import AdapterSpec
from routeviz.capture.adapters.hf_topk import is_topk_router
from routeviz.store.schema import RouteEvent


def read_shared_gate(module, inputs, output):
    gate = output.float()  # [t, 1]
    kept = torch.ones(gate.shape, dtype=torch.int32, device=gate.device)
    return RouteEvent("keep", choice=kept, weight=torch.sigmoid(gate))


SHARED_GATE = AdapterSpec(read_shared_gate)


def shared_gates(block: nn.Module) -> dict | None:
    children = list(block.named_children())
    if not any(is_topk_router(child) for _, child in children):
        return None
    gates = [name for name, child in children
             if type(child) is nn.Linear and child.out_features == 1]
    return {gates[0]: SHARED_GATE} if len(gates) == 1 else None


def register(registry) -> None:
    registry.register_block("shared-expert gate beside a top-k router", shared_gates)
