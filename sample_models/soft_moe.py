"""A Soft MoE feed-forward layer (Puigcerver et al. 2023, "From sparse to soft mixtures of
experts"; google-research/vmoe `soft_router.py`).

Every expert has `slots_per_expert` slots. With X [b, n, d] the layer's input and
Φ [d, S] one parameter vector per slot (S = experts × slots per expert):

    logits = scale · normalize(X) @ normalize(Φ)      # [b, n, S], L2 over d (as in vmoe)
    D = softmax over tokens n   (dispatch)            # each slot: a convex mix of all tokens
    C = softmax over slots S    (combine)             # each token: a convex mix of all slots
    slots = Dᵀ X                                      # [b, S, d]
    Y = C @ expert(slots)                             # expert i runs its own slots

Nothing is dropped and no expert is chosen: routeviz records C summed per expert (`soft`)
and D per slot (`dispatch`), recomputed by the tracer from X and Φ (tracers/soft_moe.py).

Legend: b - batch, n - tokens, d - width, e - experts, s - slots per expert, S - e · s,
h - expert hidden width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftMoE(nn.Module):
    def __init__(self, d_model: int, expert_hidden: int, n_experts: int, slots_per_expert: int,
                 scale_init: float = 1.0):
        super().__init__()
        self.n_experts, self.slots_per_expert = n_experts, slots_per_expert
        n_slots = n_experts * slots_per_expert
        self.slot_params = nn.Parameter(torch.randn(d_model, n_slots) * d_model ** -0.5)  # Φ [d, S]
        # learned temperature of the normalised logits (vmoe starts it at 1; a small model
        # trained briefly stays near-uniform from there, so glyph-soft starts higher)
        self.scale = nn.Parameter(torch.full((), float(scale_init)))
        self.w_in = nn.Parameter(torch.randn(n_experts, d_model, expert_hidden) * d_model ** -0.5)
        self.b_in = nn.Parameter(torch.zeros(n_experts, 1, expert_hidden))
        self.w_out = nn.Parameter(torch.randn(n_experts, expert_hidden, d_model) * expert_hidden ** -0.5)
        self.b_out = nn.Parameter(torch.zeros(n_experts, 1, d_model))

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # [b, n, d] -> [b, n, S]
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.slot_params, dim=0)

    def experts(self, slots: torch.Tensor) -> torch.Tensor:  # [b, S, d] -> [b, S, d]
        b, n_slots, d = slots.shape
        per_expert = slots.view(b, self.n_experts, self.slots_per_expert, d).transpose(0, 1)
        per_expert = per_expert.reshape(self.n_experts, b * self.slots_per_expert, d)  # [e, b·s, d]
        hidden = F.gelu(per_expert @ self.w_in + self.b_in)  # [e, b·s, h]
        out = hidden @ self.w_out + self.b_out  # [e, b·s, d]
        out = out.view(self.n_experts, b, self.slots_per_expert, d).transpose(0, 1)
        return out.reshape(b, n_slots, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [b, n, d] -> [b, n, d]
        logits = self.logits(x)
        dispatch = logits.softmax(dim=1)  # [b, n, S]: each slot's weights over tokens
        combine = logits.softmax(dim=-1)  # [b, n, S]: each token's weights over slots
        slots = dispatch.transpose(1, 2) @ x  # [b, S, d]
        return combine @ self.experts(slots)
