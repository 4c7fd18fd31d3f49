"""Adapters from routing modules to RouteEvents, one module per family.

Each module here has a `register()` that calls `routeviz.register(...)` for its classes;
`routeviz.registry` calls them on first lookup (no import-time side effects).
"""

BUILTIN = [
    "tracers.hf_topk",  # transformers 5 (logits, weights, index) routers
    "tracers.shared_expert",  # Qwen2-MoE shared-expert sigmoid gate, its own site
    "tracers.switch",  # Switch Transformers top-1 router with capacity drops
    "tracers.llama4",  # Llama 4 router: (sigmoid scores, logits)
    "tracers.linear_gate",  # transformers 4.x plain nn.Linear gates, k from the block
    "tracers.fused_experts",  # fallback: routing read from *Experts arguments (pre-hook)
    "tracers.sample_layers",  # sample_models.layers: MoE, mixture-of-depths, exit heads, pruning, merging
    "tracers.dae_syn",  # the DAE-Syn discrete autoencoder's routers
    "tracers.pretrained",  # minilm-moe and dinov2-small
]
