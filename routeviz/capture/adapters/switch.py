"""Switch Transformers: `SwitchTransformersTop1Router` returns (dispatch one-hot [b,s,e],
top probability [b,s,1], logits [b,s,e]).

A token over its expert's capacity gets an all-zero dispatch row: it is dropped (it skips the
experts and rides the residual). Two events per call at the router's site:
- `expert` rows for kept tokens only (choice = the expert it was dispatched to, weight = its
  router probability);
- `keep` rows for every token: 1 dispatched, 0 dropped for capacity (weight = the same
  probability).
Expert capacity and expert count go into the run config (`sites`). Capacity is counted in
sequence order over all positions, padding included: with LEFT padding the pads come first
and take capacity, so real tokens' decisions change (right padding leaves them as they are).

Interventions: ablate and force recompute the routing from the edited logits as the router
does (softmax, argmax, capacity in sequence order), so a forced expert still drops the
tokens past its capacity; `disable keep` dispatches every token (no capacity). Top-k stays 1.
"""

from __future__ import annotations

import torch

from routeviz.capture.adapters.contract import AdapterSpec, class_named
from routeviz.capture.adapters.edits import Editor, edited_scores
from routeviz.store.schema import RouteEvent


def read_top1(module, inputs, output):
    dispatch, top_prob, logits = output  # [b, s, e] 0/1, [b, s, 1], [b, s, e]
    kept = dispatch.sum(dim=-1, keepdim=True) > 0  # [b, s, 1]
    expert = dispatch.argmax(dim=-1, keepdim=True)  # [b, s, 1]; meaningless where dropped
    weight = top_prob.float()
    return [RouteEvent("expert", choice=expert, weight=weight, valid=kept, logits=logits),
            RouteEvent("keep", choice=kept.to(torch.int32), weight=weight)]


def describe_top1(module) -> dict:
    return {"n_experts": int(module.num_experts), "top_k": 1,
            "expert_capacity": int(module.expert_capacity)}


def edit_top1(module, args, kwargs, output, plan):
    dispatch, top_prob, logits = output  # [b, s, e], [b, s, 1], [b, s, e]
    edited = edited_scores(logits, plan)
    probs = torch.softmax(edited.float(), dim=-1)
    expert = torch.nn.functional.one_hot(probs.argmax(dim=-1), logits.shape[-1])  # [b, s, e]
    if "keep" not in plan.disable:
        expert = expert * (torch.cumsum(expert, dim=-2) <= module.expert_capacity)
    top = probs.amax(dim=-1, keepdim=True).to(top_prob.dtype)
    return expert.to(dispatch.dtype), top, edited


def register(registry) -> None:
    registry.register_matcher("Switch Transformers top-1 router",
                              class_named(r"^SwitchTransformersTop1Router$"),
                              AdapterSpec(read_top1, describe=describe_top1,
                                          edit=Editor(edit_top1, frozenset({"ablate", "force",
                                                                            "keep"}))))
