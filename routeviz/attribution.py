"""Which input tokens (or patches) drive a router's choice for one token: captum Integrated
Gradients on one router logit, computed on demand for one example.

    result = router_attribution(model, {"input_ids": ids, "attention_mask": mask},
                                site="model.layers.1.mlp.gate", token=5)
    result.scores   # [s] one attribution per input position (summed over the hidden size)

The target is the router logit of `expert` (default: the token's top-1 expert in a plain
forward) at row `token` of the router's output for example 0. The router is any module whose
output is its logits, or a tuple whose first element is (transformers `*TopKRouter`
returns `(logits [t, e], weights, index)`); logits shaped [b*s, e] or [b, s, e].

method "layer" (default): LayerIntegratedGradients over the output of `layer` (the input
embeddings: `model.get_input_embeddings()` unless given), baseline = the pad token (or 0).
method "embeddings": IntegratedGradients w.r.t. `inputs_embeds` with a zero baseline (models
whose forward accepts `inputs_embeds`). The model's own modules are hooked only for the
duration of the call; every hook is removed in `finally`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from routeviz.errors import RoutevizError, choose

PRIMARY_INPUTS = ("input_ids", "pixel_values", "inputs_embeds")


@dataclass
class AttributionResult:
    scores: list  # [s] attribution per input position (sum over the hidden size)
    site: str
    token: int  # the router row attributed (position in example 0)
    expert: int  # the router logit attributed
    logit: float  # that logit in a plain forward
    delta: float  # IG convergence delta: sum(scores) - (logit(input) - logit(baseline))
    method: str
    n_steps: int
    tokens: list | None = None  # token strings, when known (attribute_item)


def router_logits(output) -> torch.Tensor:
    """The logits tensor of a router's output (a tensor, or a tuple starting with one)."""
    logits = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise RoutevizError("the router's output is not logits (a float tensor, or a tuple "
                            "whose first element is one)")
    return logits


def _module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        routers = [n for n, m in modules.items() if "router" in type(m).__name__.lower()
                   or n.endswith(("gate", "router"))]
        choose("router site", name, routers or list(modules)[:50])
    return modules[name]


def _embedding_layer(model: nn.Module, layer) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    if isinstance(layer, str):
        return _module(model, layer)
    getter = getattr(model, "get_input_embeddings", None)
    found = getter() if callable(getter) else None
    if isinstance(found, nn.Module):
        return found
    for name, module in model.named_modules():
        if "embed" in f"{name} {type(module).__name__}".lower() and name:
            return module
    raise RoutevizError("no input-embedding layer found; pass layer= (a module or its name)")


def _split_inputs(inputs):
    """(primary tensor, its keyword, names of the extra tensors, the extra tensors)."""
    if isinstance(inputs, torch.Tensor):
        return inputs, None, [], []
    if not isinstance(inputs, dict):
        raise RoutevizError("inputs must be a tensor or a dict of tensors")
    key = next((k for k in PRIMARY_INPUTS if k in inputs), None)
    if key is None:
        raise RoutevizError(f"inputs need one of {', '.join(PRIMARY_INPUTS)}; got "
                            + ", ".join(inputs))
    extra = [k for k, v in inputs.items() if k != key and isinstance(v, torch.Tensor)]
    return inputs[key], key, extra, [inputs[k] for k in extra]


def router_attribution(model: nn.Module, inputs, site: str, token: int,
                       expert: int | None = None, method: str = "layer", layer=None,
                       n_steps: int = 32, internal_batch_size: int | None = 8,
                       baseline=None) -> AttributionResult:
    """Attribute router `site`'s logit for `expert` at row `token` (example 0) to the inputs."""
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    choose("method", method, ["layer", "embeddings"])
    router = _module(model, site)
    primary, key, extra_names, extras = _split_inputs(inputs)
    primary, extras = primary[:1], [e[:1] for e in extras]  # example 0 only
    captured = {}

    def keep_output(module, args, output):
        captured["logits"] = router_logits(output)

    def target_logit(first, *rest):  # -> [batch] the attributed logit per (scaled) input
        kwargs = dict(zip(extra_names, rest))
        if key is None:
            model(first, **kwargs)
        else:
            model(**{key: first}, **kwargs)
        logits = captured.pop("logits")
        batch = first.shape[0]
        logits = logits.reshape(batch, -1, logits.shape[-1])  # [b, s, e]
        if not 0 <= token < logits.shape[1]:
            raise RoutevizError(f"token {token} is out of range: the router saw "
                                f"{logits.shape[1]} rows per example")
        return logits[:, token, chosen[0]]

    handle = router.register_forward_hook(keep_output)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            kwargs = dict(zip(extra_names, extras))
            model(primary, **kwargs) if key is None else model(**{key: primary}, **kwargs)
            logits = captured.pop("logits")
            logits = logits.reshape(1, -1, logits.shape[-1])  # [1, s, e]
        if not 0 <= token < logits.shape[1]:
            raise RoutevizError(f"token {token} is out of range: the router saw "
                                f"{logits.shape[1]} rows for this example")
        n_experts = logits.shape[-1]
        chosen = [int(logits[0, token].argmax()) if expert is None else int(expert)]
        if not 0 <= chosen[0] < n_experts:
            raise RoutevizError(f"expert {chosen[0]} is out of range: {site} has "
                                f"{n_experts} experts (0-{n_experts - 1})")
        logit = float(logits[0, token, chosen[0]])
        with torch.enable_grad():
            if method == "layer":
                if baseline is None:
                    pad = getattr(getattr(model, "config", None), "pad_token_id", None)
                    baseline = (torch.full_like(primary, int(pad or 0))
                                if not primary.is_floating_point() else torch.zeros_like(primary))
                explainer = LayerIntegratedGradients(target_logit,
                                                     _embedding_layer(model, layer))
                attributions, delta = explainer.attribute(
                    primary, baselines=baseline, additional_forward_args=tuple(extras) or None,
                    n_steps=n_steps, internal_batch_size=internal_batch_size,
                    return_convergence_delta=True)
            else:
                if key == "inputs_embeds" or primary.is_floating_point():
                    embeds = primary
                else:
                    embeds = _embedding_layer(model, layer)(primary).detach()
                key = "inputs_embeds" if key == "input_ids" else key
                explainer = IntegratedGradients(target_logit)
                attributions, delta = explainer.attribute(
                    embeds, baselines=torch.zeros_like(embeds) if baseline is None else baseline,
                    additional_forward_args=tuple(extras) or None, n_steps=n_steps,
                    internal_batch_size=internal_batch_size, return_convergence_delta=True)
    finally:
        handle.remove()
        model.train(was_training)
    scores = attributions[0]  # [s, h] (or [c, h, w] for pixels)
    per_position = scores.reshape(scores.shape[0], -1).sum(-1) if scores.dim() > 1 else scores
    return AttributionResult(scores=[float(v) for v in per_position], site=site,
                             token=int(token), expert=chosen[0], logit=logit,
                             delta=float(delta.reshape(-1)[0]), method=method, n_steps=n_steps)


def attribute_item(runner, item, site: str, token: int, expert: int | None = None,
                   **options) -> AttributionResult:
    """router_attribution for one `routeviz.inputs.Item` through a ModelRunner's encoder;
    the result carries the token strings, so a page can colour them."""
    encoded = runner.encode([item])
    result = router_attribution(runner.module, encoded.inputs, site, token, expert, **options)
    result.tokens = list(encoded.tokens[0])
    return result
