"""Adapters for `sample_models.layers`: MoE routers, mixture-of-depths, exits, pruning, merging.

Conventions (ARCHITECTURE.md): `keep` records every token the module saw (1 kept, 0
dropped/skipped); `exit` records one row per unit at the layer it exited (choice = that
layer); `merge` records one row per merged-away token (choice = original position of the
token it merged into, weight = similarity). Modules that see a subset of the tokens pass
their original positions, which become `token_index`.
"""

from __future__ import annotations

import torch

from routeviz.registry import register as register_adapter
from routeviz.schema import RouteEvent


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


def register() -> None:
    from sample_models import layers

    register_adapter(layers.SampleTopKRouter, topk_router)
    register_adapter(layers.MixtureOfDepthsRouter, depth_router)
    register_adapter(layers.TokenExitHead, token_exit)
    register_adapter(layers.ImageExitHead, image_exit)
    register_adapter(layers.EViTPruner, evit_pruner)
    register_adapter(layers.ToMeMerger, tome_merger)
