"""The generic adapters: routing modules recognised by contract, whatever the model family.

One module per contract, each with `register(registry)`; the registry calls `register_core`
before any entry-point plugin, so these need no entry point. Family-specific and
sample-model adapters live outside the core (`tracers/`, third-party packages) and come in
through the `routeviz.tracers` entry-point group.
"""

from __future__ import annotations

from routeviz.capture.adapters import (
    fused_experts,
    hf_topk,
    linear_gate,
    llama4,
    shared_expert,
    switch,
)

# Order matters only among matchers (the first that matches a module wins).
CORE = (
    hf_topk,  # transformers 5 (logits, weights, index) *TopKRouter
    shared_expert,  # Qwen2-MoE shared-expert sigmoid gate, its own site
    switch,  # Switch Transformers top-1 router with capacity drops
    llama4,  # Llama 4 router: (sigmoid scores, logits)
    linear_gate,  # transformers 4.x plain nn.Linear gates, k from the block
    fused_experts,  # fallback: routing read from the experts module's call (pre-hook)
)


def register_core(registry) -> None:
    """Register every generic adapter on `registry`. Early exit heads and token selection
    are opt-in (`routeviz.register_exit`, `routeviz.register_selection`)."""
    for module in CORE:
        module.register(registry)
