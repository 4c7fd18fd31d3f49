"""Soft MoE layers: ours (`sample_models.soft_moe.SoftMoE`, glyph-soft) and
soft-moe-pytorch's `SoftMoE` (lucidrains; an optional extra, `pip install routeviz[soft]`).

Both keep the dispatch and combine weights local to their forward, so each adapter
recomputes the routing logits from the layer's input and parameters, exactly as the layer
does, and records `soft` and `dispatch` rows (routeviz.capture.adapters.soft). The run
config's `sites[<name>]` says how many experts and slots per expert the layer has.
soft-moe-pytorch's training-time noise (`add_noise=True`) is not recomputed: trace in eval.
"""

from __future__ import annotations

import torch.nn.functional as F

from routeviz.capture.adapters.contract import AdapterSpec, class_named
from routeviz.capture.adapters.soft import soft_events


# --- ours: logits = scale · normalize(x) @ normalize(Φ) (vmoe) -------------------------------
def routeviz_logits(module, x):  # x [b, n, d] -> [b, n, S]
    return module.scale * F.normalize(x, dim=-1) @ F.normalize(module.slot_params, dim=0)


def routeviz_soft(module, inputs, output):
    logits = routeviz_logits(module, inputs[0])
    return soft_events(logits.softmax(dim=1), logits.softmax(dim=-1), module.slots_per_expert)


def describe_routeviz(module) -> dict:
    return {"n_experts": module.n_experts, "slots_per_expert": module.slots_per_expert}


# --- soft-moe-pytorch: logits = norm(x) · slot_norm(slot_embeds), masked keys -----------------
def lucidrains_input(module, inputs):
    """The normalised tokens [b, n, d] the layer mixes (images [b, d, h, w] flattened
    row-major) and its key padding mask [b, n] or None."""
    x = inputs[0]
    if x.ndim == 4:
        x = x.flatten(2).transpose(1, 2)
    elif x.ndim == 2:
        x = x[:, None]
    mask = inputs[1] if len(inputs) > 1 else None
    return module.norm(x), mask


def lucidrains_logits(module, inputs):  # -> [b, n, S]
    x, mask = lucidrains_input(module, inputs)
    slots = module.slot_norm(module.slot_embeds)  # [e, s, d]
    logits = x @ slots.flatten(0, 1).T
    if mask is not None:
        logits = logits.masked_fill(~mask[..., None], -float(logits.abs().max() + 1e4))
    return logits


def lucidrains_soft(module, inputs, output):
    logits = lucidrains_logits(module, inputs)
    return soft_events(logits.softmax(dim=1), logits.softmax(dim=-1), module.slot_embeds.shape[1])


def describe_lucidrains(module) -> dict:
    e, s, _ = module.slot_embeds.shape
    return {"n_experts": int(e), "slots_per_expert": int(s)}


def is_lucidrains_soft_moe(module) -> bool:
    return type(module).__module__.startswith("soft_moe_pytorch") and class_named(
        r"^SoftMoE$")(module)


def register(registry) -> None:
    from sample_models.soft_moe import SoftMoE

    registry.register(SoftMoE, AdapterSpec(routeviz_soft, describe=describe_routeviz))
    registry.register_matcher("soft-moe-pytorch", is_lucidrains_soft_moe,
                              AdapterSpec(lucidrains_soft, describe=describe_lucidrains))
