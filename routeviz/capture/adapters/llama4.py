"""Llama 4: `Llama4Router` (an `nn.Linear` subclass) returns (scores [t,e], logits [t,e]),
scores = sigmoid of the top-k logits and 0 elsewhere; every expert runs densely on its
score-scaled input. Recorded as the k experts with the highest scores (rank 0 = top),
weight = the sigmoid score (weights do not sum to 1). The shared expert runs for every token
with no gate: there is no decision to record for it.

Interventions: the scores are recomputed from the edited logits as the router does (top-k
of the logits, sigmoid, 0 elsewhere). Top-k is not changed: the recorded choice reads k
from the router.
"""

from __future__ import annotations

import torch

from routeviz.capture.adapters.contract import AdapterSpec, class_named
from routeviz.capture.adapters.edits import Editor, check_top_k, edited_scores
from routeviz.store.schema import RouteEvent


def read_scores(module, inputs, output):
    scores, logits = output  # [t, e], [t, e]
    weight, index = scores.topk(module.top_k, dim=-1)  # [t, k], sorted
    return RouteEvent("expert", choice=index, weight=weight, logits=logits)


def describe(module) -> dict:
    return {"n_experts": int(module.num_experts), "top_k": int(module.top_k)}


def edit_scores(module, args, kwargs, output, plan):
    scores, logits = output  # [t, e], [t, e]
    check_top_k(module.top_k, logits.shape[-1], plan)
    edited = edited_scores(logits, plan)
    top, index = edited.topk(module.top_k, dim=1)  # [t, k]
    masked = torch.full_like(edited, float("-inf")).scatter_(1, index, top)
    return torch.sigmoid(masked.float()).to(scores.dtype), edited


def register(registry) -> None:
    registry.register_matcher("Llama 4 router", class_named(r"^Llama4Router$"),
                              AdapterSpec(read_scores, describe=describe,
                                          edit=Editor(edit_scores, frozenset({"ablate", "force"}))))
