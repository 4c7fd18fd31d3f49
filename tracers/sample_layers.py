"""Adapters for the sample models' routing modules: `sample_models.layers` (text-moe,
glyph-vit: MoE routers, mixture-of-depths, exit heads, pruning, merging) and
`sample_models.conditional` (minilm-moe, dinov2-small). Both call the algorithms of
`sample_models.routing`; they differ only in how they lay out their decision.

Conventions (ARCHITECTURE.md): `keep` records every token the module saw (1 kept, 0
dropped/skipped); `exit` records one row per unit at the layer it exited (choice = that
layer); `merge` records one row per merged-away token (choice = original position of the
token it merged into, weight = similarity). Modules that see a subset of the tokens pass
their original positions, which become `token_index`.
"""

from __future__ import annotations

import torch

from routeviz.schema import RouteEvent


# --- sample_models.layers: decisions over the rows the module saw -------------------------
def topk_router(module, inputs, output):
    """The (logits [t,e], weights [t,k], index [t,k]) triple; rows mapped to original
    positions by the router's `positions` argument [b, s] when it sees a subset."""
    logits, weights, index = output
    positions = inputs[1] if len(inputs) > 1 else None
    return RouteEvent("expert", choice=index, weight=weights, logits=logits,
                      token_index=positions if isinstance(positions, torch.Tensor) else None)


def depth_router(module, inputs, output):
    return RouteEvent("keep", choice=output.selected.to(torch.int32)[..., None],
                      weight=output.scores[..., None], token_index=output.positions)


def token_exit(module, inputs, output):
    layer = torch.full_like(output.exit_now, output.layer, dtype=torch.int32)
    return RouteEvent("exit", choice=layer[..., None], weight=output.confidence[..., None],
                      valid=output.exit_now[..., None], layer=output.layer,
                      token_index=output.positions)


def image_exit(module, inputs, output):
    layer = torch.full_like(output.exit_now, output.layer, dtype=torch.int32)
    return RouteEvent("exit", choice=layer[:, None], weight=output.confidence[:, None],
                      valid=output.exit_now[:, None], per_example=True, layer=output.layer)


def evit_pruner(module, inputs, output):
    return RouteEvent("keep", choice=output.kept.to(torch.int32)[..., None],
                      weight=output.scores[..., None], token_index=output.seen_positions)


def tome_merger(module, inputs, output):
    return RouteEvent("merge", choice=output.target[..., None],
                      weight=output.similarity[..., None], token_index=output.source)


# --- sample_models.conditional: a `Decision` already laid out over the whole batch --------
def decision_event(module, inputs, output) -> RouteEvent:
    d = output.decision
    return RouteEvent(d.kind, d.choice, d.weight, valid=d.valid, token_index=d.token_index,
                      per_example=d.per_example)


def register(registry) -> None:
    from sample_models import conditional, layers

    registry.register(layers.SampleTopKRouter, topk_router)
    registry.register(layers.MixtureOfDepthsRouter, depth_router)
    registry.register(layers.TokenExitHead, token_exit)
    registry.register(layers.ImageExitHead, image_exit)
    registry.register(layers.EViTPruner, evit_pruner)
    registry.register(layers.ToMeMerger, tome_merger)
    for cls in (conditional.ExpertRouter, conditional.TokenPruner, conditional.TokenMerger,
                conditional.ExitGate):
        registry.register(cls, decision_event)
