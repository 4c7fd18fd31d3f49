"""Soft routing (Soft MoE): dispatch and combine weights to `soft` and `dispatch` events.

A Soft MoE layer keeps D (dispatch, softmax over tokens) and C (combine, softmax over
slots) as local variables, so a tracer recomputes them from the layer's input and
parameters and hands them here. Slot i belongs to expert i // slots_per_expert.

- `soft`: per token, C summed over each expert's slots, sorted by that mass (rank 0 is the
  token's dominant expert); the masses of a token sum to 1.
- `dispatch`: per token, D for every slot, sorted by weight; for each slot the weights sum
  to 1 over the example's tokens.

Legend: b - batch, n - tokens, S - slots (experts × slots per expert), e - experts.
"""

from __future__ import annotations

import torch

from routeviz.store.schema import RouteEvent


def soft_events(dispatch: torch.Tensor, combine: torch.Tensor, slots_per_expert: int,
                token_index=None) -> list[RouteEvent]:
    """dispatch, combine [b, n, S] -> [soft event [b, n, e], dispatch event [b, n, S]]."""
    b, n, n_slots = combine.shape
    mass = combine.reshape(b, n, n_slots // slots_per_expert, slots_per_expert).sum(-1)
    mass, expert = mass.sort(dim=-1, descending=True)  # [b, n, e]
    weight, slot = dispatch.sort(dim=-1, descending=True)  # [b, n, S]
    return [RouteEvent("soft", choice=expert.to(torch.int32), weight=mass, token_index=token_index),
            RouteEvent("dispatch", choice=slot.to(torch.int32), weight=weight,
                       token_index=token_index)]


def soft_mix(x: torch.Tensor, logits: torch.Tensor, experts) -> torch.Tensor:
    """The layer's output from its routing logits [b, n, S]: C @ experts(Dᵀ x), as Soft MoE
    computes it; a tracer's test compares this with the layer's real output."""
    dispatch, combine = logits.softmax(dim=1), logits.softmax(dim=-1)
    return combine @ experts(dispatch.transpose(1, 2) @ x)
