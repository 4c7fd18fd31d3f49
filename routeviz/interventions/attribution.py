"""Which input tokens (or patches) drive a router's choice for one token: captum Integrated
Gradients on one router logit, computed on demand for one example.

    result = router_attribution(model, {"input_ids": ids, "attention_mask": mask},
                                site="model.layers.1.mlp.gate", token=5)
    result.scores   # [s] one attribution per input position (summed over the hidden size)

The target is the router logit of `expert` (default: the token's top-1 expert in a plain
forward) for token `token` of example 0 at router `site`. How a router's output is read is
`reader(module, args, output, batch) -> (logits [b, s, e], token ids [b, s], top-1 [b, s])`,
token id -1 where a row is no token (padding, CLS, a token the router did not decide
about). The default reads any module whose output is its logits, or a tuple starting with
them (transformers `*TopKRouter`), row i being token i; `routeviz.explain` builds one from a
site's registered adapter, so routers that see a subset of the tokens (mixture-of-depths,
pruning) or score experts otherwise (the pretrained sample models) are read right. Where
the token is not routed at the site for a point on the path, its logit counts as 0 there
(the convergence delta then says how far completeness is off).

method "layer" (default): LayerIntegratedGradients over the output of `layer` (the input
embeddings: `model.get_input_embeddings()` unless given), baseline = the pad token (or 0).
method "embeddings": IntegratedGradients w.r.t. `inputs_embeds` with a zero baseline.
method "pixels": IntegratedGradients w.r.t. the image tensor, baseline 0 (the mean colour
after the usual normalisation); `patch` (pixels per side) sums each patch's attribution, so
the result has one score per patch, row-major. The model's own modules are hooked only for
the duration of the call; every hook is removed in `finally`. A forward decorated with
`torch.no_grad` (inference-only wrappers) is called undecorated so that gradients flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from routeviz.errors import RoutevizError, choose

PRIMARY_INPUTS = ("input_ids", "pixel_values", "pixels", "inputs_embeds")


@dataclass
class AttributionResult:
    scores: list  # [s] attribution per input position or patch (sum over hidden / pixels)
    site: str
    token: int  # the token (or patch) whose routing is attributed
    expert: int  # the router logit attributed
    logit: float  # that logit in a plain forward
    baseline_logit: float  # ... and at the baseline input (0 if not routed there)
    delta: float  # IG convergence delta: sum(scores) - (logit - baseline_logit)
    method: str
    n_steps: int
    tokens: list | None = None  # token strings (patch labels), when known
    n_experts: int = 0


def router_logits(output) -> torch.Tensor:
    """The logits tensor of a router's output (a tensor, or a tuple starting with one)."""
    logits = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise RoutevizError("the router's output is not logits (a float tensor, or a tuple "
                            "whose first element is one)")
    return logits


def read_logits(module, args, output, batch: int):
    """Default reader: row i of the router's logits is token i of its example."""
    logits = router_logits(output)
    logits = logits.reshape(batch, -1, logits.shape[-1])  # [b, s, e]
    ids = torch.arange(logits.shape[1], device=logits.device).expand(batch, -1)  # [b, s]
    return logits, ids, logits.argmax(-1)


def _module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        routers = [n for n, m in modules.items() if "router" in type(m).__name__.lower()
                   or n.endswith(("gate", "router"))]
        choose("router site", name, routers or list(modules)[:50])
    return modules[name]


def embedding_layer(model: nn.Module, layer=None) -> nn.Module:
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


def split_inputs(inputs):
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


def _forward(model: nn.Module):
    """The model's call, or its undecorated forward if that runs under torch.no_grad."""
    wrapped = getattr(type(model).forward, "__wrapped__", None)
    if wrapped is None:
        return model
    return lambda *args, **kwargs: wrapped(model, *args, **kwargs)


def default_baseline(model, primary, method):
    if method == "layer" and not primary.is_floating_point():
        pad = getattr(getattr(model, "config", None), "pad_token_id", None)
        return torch.full_like(primary, int(pad or 0))
    return torch.zeros_like(primary)


def router_attribution(model: nn.Module, inputs, site: str, token: int,
                       expert: int | None = None, method: str = "layer", layer=None,
                       n_steps: int = 32, internal_batch_size: int | None = 8,
                       baseline=None, reader=read_logits, patch: int | None = None
                       ) -> AttributionResult:
    """Attribute router `site`'s logit for `expert` at token `token` (example 0) to the inputs."""
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    choose("method", method, ["layer", "embeddings", "pixels"])
    router = _module(model, site)
    primary, key, extra_names, extras = split_inputs(inputs)
    primary, extras = primary[:1], [e[:1] for e in extras]  # example 0 only
    run = _forward(model)
    captured = {}

    def keep_output(module, args, output):
        captured["read"] = (module, args, output)

    def read(batch):
        if "read" not in captured:
            raise RoutevizError(f"router {site} did not run for this input")
        return reader(*captured.pop("read"), batch)

    def call(first, rest):
        kwargs = dict(zip(extra_names, rest))
        return run(first, **kwargs) if key is None else run(**{key: first}, **kwargs)

    def target_logit(first, *rest):  # -> [batch] the attributed logit per (scaled) input
        call(first, rest)
        logits, ids, _ = read(first.shape[0])  # [b, s, e], [b, s]
        hit = (ids == token).to(logits.dtype)  # [b, s] the token's row (none: not routed)
        return (logits[..., chosen[0]] * hit).sum(1)

    handle = router.register_forward_hook(keep_output)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            call(primary, extras)
            logits, ids, top1 = read(1)
        rows = (ids[0] == token).nonzero().flatten()
        if len(rows) == 0:
            routed = sorted(int(i) for i in ids[0] if i >= 0)
            span = f"{routed[0]}-{routed[-1]}" if routed else "none"
            raise RoutevizError(f"token {token} is not routed at {site} for this input "
                                f"(out of range, dropped, exited or not selected there; "
                                f"routed tokens: {span})")
        row = int(rows[0])
        n_experts = logits.shape[-1]
        chosen = [int(top1[0, row]) if expert is None else int(expert)]
        if not 0 <= chosen[0] < n_experts:
            raise RoutevizError(f"expert {chosen[0]} is out of range: {site} has "
                                f"{n_experts} experts (0-{n_experts - 1})")
        logit = float(logits[0, row, chosen[0]])
        if baseline is None:
            baseline = default_baseline(model, primary, method)
        with torch.no_grad():
            baseline_logit = float(target_logit(baseline, *extras)[0])
        with torch.enable_grad():
            if method == "layer":
                explainer = LayerIntegratedGradients(target_logit, embedding_layer(model, layer))
                start = baseline
            elif method == "embeddings":
                explainer = IntegratedGradients(target_logit)
                if not primary.is_floating_point():
                    primary = embedding_layer(model, layer)(primary).detach()
                    key = "inputs_embeds"
                start = torch.zeros_like(primary) if baseline.shape != primary.shape else baseline
            else:
                explainer = IntegratedGradients(target_logit)
                start = baseline
            attributions, delta = explainer.attribute(
                primary, baselines=start, additional_forward_args=tuple(extras) or None,
                n_steps=n_steps, internal_batch_size=internal_batch_size,
                return_convergence_delta=True)
    finally:
        handle.remove()
        model.train(was_training)
    return AttributionResult(scores=per_position(attributions[0], patch), site=site,
                             token=int(token), expert=chosen[0], logit=logit,
                             baseline_logit=baseline_logit,
                             delta=float(delta.reshape(-1)[0]), method=method,
                             n_steps=n_steps, n_experts=int(n_experts))


def per_position(scores: torch.Tensor, patch: int | None) -> list:
    """[s, h] -> [s] (sum over the hidden size); [c, H, W] with `patch` -> one per patch."""
    if patch:
        c, height, width = scores.shape
        grid = scores.reshape(c, height // patch, patch, width // patch, patch)
        return [float(v) for v in grid.sum(dim=(0, 2, 4)).reshape(-1)]
    flat = scores.reshape(scores.shape[0], -1).sum(-1) if scores.dim() > 1 else scores
    return [float(v) for v in flat]
