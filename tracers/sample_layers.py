"""Adapters for the sample models' routing modules: `sample_models.layers` (text-moe,
glyph-vit: MoE routers, mixture-of-depths, exit heads, pruning, merging) and
`sample_models.conditional` (minilm-moe, dinov2-small). Both call the algorithms of
`sample_models.routing`; they differ only in how they lay out their decision.

Conventions (ARCHITECTURE.md): `keep` records every token the module saw (1 kept, 0
dropped/skipped); `exit` records one row per unit at the layer it exited (choice = that
layer); `merge` records one row per merged-away token (choice = original position of the
token it merged into, weight = similarity). Modules that see a subset of the tokens pass
their original positions, which become `token_index`.

Interventions (`routeviz.intervene`, editors below): routers re-choose with the shared
`routing.top_k_route` on edited scores; pruning, merging, capacity routing and early exit
are turned off by running the module's own forward with its setting at "off" (keep every
token, merge none, exit only at the last layer), or, for the pretrained models' modules,
by passing that setting as the module's argument.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from routeviz.capture.adapters.contract import AdapterSpec
from routeviz.capture.adapters.edits import (
    EXPERT_EDITS,
    Editor,
    argument,
    check_top_k,
    edited_scores,
    replace_argument,
    rerun_with,
)
from routeviz.store.schema import RouteEvent


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


# --- interventions -------------------------------------------------------------------------
def reroute_topk(module, args, kwargs, output, plan):
    """SampleTopKRouter: top-k of the edited logits, softmax over the chosen (its routing)."""
    from sample_models import routing

    logits, _, index = output  # [t, e], [t, k], [t, k]
    k = plan.top_k or index.shape[-1]
    check_top_k(k, logits.shape[-1], plan)
    edited = edited_scores(logits, plan)
    new_weights, new_index = routing.top_k_route(edited, k)
    return edited, new_weights, new_index


def turned_off(kind: str, **settings):
    """An editor that reruns the module's forward with `settings` when `kind` is disabled."""
    def apply(module, args, kwargs, output, plan):
        return rerun_with(module, args, kwargs, **settings) if kind in plan.disable else None
    return Editor(apply, frozenset({kind}))


def reroute_scores(module, args, kwargs, plan):
    """ExpertRouter(scores, top_k, active): edited scores and top-k passed in."""
    scores = argument(args, kwargs, 0, "scores")
    k = plan.top_k or argument(args, kwargs, 1, "top_k")
    check_top_k(k, scores.shape[-1], plan)
    args, kwargs = replace_argument(args, kwargs, 0, "scores", edited_scores(scores, plan))
    return replace_argument(args, kwargs, 1, "top_k", k)


def argument_off(kind: str, index: int, name: str, off):
    """A pre-hook editor setting argument `name` to `off(value)` when `kind` is disabled."""
    def apply(module, args, kwargs, plan):
        if kind not in plan.disable:
            return None
        return replace_argument(args, kwargs, index, name, off(argument(args, kwargs, index, name)))
    return Editor(apply, frozenset({kind}), hook="pre")


def no_exit(knobs):
    return dataclasses.replace(knobs, exit_threshold=None)


def register(registry) -> None:
    from sample_models import conditional, layers

    def add(cls, read, edit):
        registry.register(cls, AdapterSpec(read, edit=edit))

    add(layers.SampleTopKRouter, topk_router, Editor(reroute_topk, EXPERT_EDITS))
    add(layers.MixtureOfDepthsRouter, depth_router, turned_off("keep", capacity=1.0))
    add(layers.TokenExitHead, token_exit, turned_off("exit", threshold=math.inf))
    add(layers.ImageExitHead, image_exit, turned_off("exit", threshold=math.inf))
    add(layers.EViTPruner, evit_pruner, turned_off("keep", keep_rate=1.0))
    add(layers.ToMeMerger, tome_merger, turned_off("merge", r=0))
    add(conditional.ExpertRouter, decision_event, Editor(reroute_scores, EXPERT_EDITS, "pre"))
    add(conditional.TokenPruner, decision_event, argument_off("keep", 2, "keep_ratio",
                                                             lambda ratio: 1.0))
    add(conditional.TokenMerger, decision_event, argument_off("merge", 2, "r", lambda r: 0))
    add(conditional.ExitGate, decision_event, argument_off("exit", 4, "knobs", no_exit))
