"""Why did this token go there: attribution of one routing decision of a runnable model.

    result = explain(load_model("text-moe"), Item(text="def f(x):"), "blocks.0.mlp.router", 3)
    result.to_json()   # per input token (or patch): text and attribution; target; delta

Integrated Gradients (routeviz.attribution) on the router logit of the chosen expert (by
default the token's top-1) at one expert site, for one token (an image: one patch) of one
example: texts through LayerIntegratedGradients on the input embeddings from a padding-token
baseline, images through IntegratedGradients on the pixels from a zero (mean-colour)
baseline, summed per patch. The router's output is read through the site's registered
adapter, so routers that see a subset of the tokens and routers that score experts
without logits (the pretrained sample models: their expert scores) are read as traced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from routeviz.errors import RoutevizError, choose
from routeviz.interventions.attribution import AttributionResult, router_attribution, split_inputs
from routeviz.store.schema import SKIP, RouteEvent


@dataclass
class Explanation:
    result: AttributionResult
    model: str
    modality: str  # "text" or "image"
    source: str
    grid: tuple | None = None  # (rows, cols) of patches, images only

    @property
    def attributions(self) -> list:
        return self.result.scores

    def to_json(self) -> dict:
        r = self.result
        tokens = r.tokens or [str(i) for i in range(len(r.scores))]
        target_text = tokens[r.token] if 0 <= r.token < len(tokens) else None
        return {
            "model": self.model,
            "input": {"modality": self.modality, "source": self.source,
                      "unit": "patch" if self.modality == "image" else "token",
                      "n": len(r.scores), "grid": list(self.grid) if self.grid else None},
            "target": {"site": r.site, "token": r.token, "text": target_text,
                       "expert": r.expert, "n_experts": r.n_experts, "logit": r.logit,
                       "baseline_logit": r.baseline_logit},
            "method": r.method, "n_steps": r.n_steps,
            "sum_attributions": float(sum(r.scores)),
            "convergence_delta": r.delta,
            "attributions": [{"index": i, "text": t, "attribution": a}
                             for i, (t, a) in enumerate(zip(tokens, r.scores))],
        }


def expert_sites(runner) -> list[str]:
    """Names of the model's routing sites (any kind; explain checks the kind when it runs)."""
    from routeviz.capture.sites import find_sites

    return [s.name for s in find_sites(runner.module)]


def adapter_reader(adapter, site: str):
    """A reader for routeviz.attribution: the router's logits (or expert scores) laid out
    [b, s, e] over the rows its adapter reports, each row's token id, and its top-1 expert."""

    def read(module, args, output, batch: int):
        result = adapter(module, args, output)
        events = [result] if isinstance(result, RouteEvent) else list(result or [])
        event = next((e for e in events if e.kind == "expert"), None)
        if event is None:
            kinds = ", ".join(sorted({e.kind for e in events})) or "nothing"
            raise RoutevizError(f"{site} decides {kinds}, not experts; explain takes an "
                                "expert site")
        choice = torch.as_tensor(event.choice)
        choice = choice.reshape(batch, -1, choice.shape[-1] if choice.dim() > 1 else 1)
        s = choice.shape[1]  # [b, s, k]
        decided = choice != SKIP
        if event.valid is not None:
            decided &= torch.as_tensor(event.valid).reshape(choice.shape).bool()
        decided = decided.any(-1)  # [b, s]
        ids = (torch.as_tensor(event.token_index).reshape(batch, s).long()
               if event.token_index is not None
               else torch.arange(s, device=choice.device).expand(batch, s))
        ids = torch.where(decided, ids, torch.full_like(ids, -1))
        scores = event.logits
        if scores is None:  # a router fed expert scores: its first floating-point input
            scores = next((a for a in args if isinstance(a, torch.Tensor)
                           and a.is_floating_point()), None)
        if scores is None:
            raise RoutevizError(f"{site}: its router exposes no logits or expert scores")
        scores = scores.reshape(-1, scores.shape[-1])  # [rows, e]
        if len(scores) == batch * s:
            grid = scores.reshape(batch, s, -1)
        elif len(scores) == int(decided.sum()):
            grid = scores.new_zeros(batch, s, scores.shape[-1]).index_put((decided,), scores)
        else:
            raise RoutevizError(f"{site}: its {len(scores)} score rows do not line up with "
                                "its decisions")
        return grid, ids, torch.where(decided, choice[..., 0].long(), -1)

    return read


def _pad_id(runner) -> int:
    tokenizer = getattr(runner, "tokenizer", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(getattr(runner, "cfg", None), "pad_id", None)
    return int(pad or 0)


def explain(runner, item, site: str, token: int, expert: int | None = None,
            n_steps: int = 32, internal_batch_size: int = 8) -> Explanation:
    """Attribute `site`'s routing of `token` (a patch index for images) to the input."""
    from routeviz.capture.sites import find_sites

    sites = {s.name: s for s in find_sites(runner.module)}
    choose("site", site, sites)
    if site not in dict(runner.module.named_modules()) or sites[site].hook == "pre":
        raise RoutevizError(f"{site} is read before it runs (a fallback site); explain takes "
                            "a router module's site")
    if token < 0:
        raise RoutevizError(f"token {token} is out of range: tokens count from 0")
    if expert is not None and expert < 0:
        raise RoutevizError(f"expert {expert} is out of range: experts count from 0")
    encoded = runner.encode([item])
    n_units = len(encoded.tokens[0]) if encoded.tokens else None
    if n_units is not None and token >= n_units:
        raise RoutevizError(f"token {token} is out of range: the input has {n_units} "
                            f"{'patches' if runner.modality == 'image' else 'tokens'} "
                            f"(0-{n_units - 1})")
    meta = encoded.meta[0] if encoded.meta else {}
    modality = meta.get("modality") or runner.modality
    primary, _, _, _ = split_inputs(encoded.inputs)
    options = {"expert": expert, "n_steps": n_steps, "internal_batch_size": internal_batch_size,
               "reader": adapter_reader(sites[site].adapter, site)}
    grid = None
    if primary.is_floating_point() and primary.dim() == 4:  # [1, c, H, W] pixels
        patch = int(meta.get("patch") or 0)
        height, width = primary.shape[-2:]
        grid_h, grid_w = meta.get("grid_h"), meta.get("grid_w")
        if not patch or height % patch or width % patch:
            raise RoutevizError(f"{runner.name}: no patch size for this image; cannot "
                                "attribute per patch")
        grid = (int(grid_h or height // patch), int(grid_w or width // patch))
        if grid != (height // patch, width // patch):
            raise RoutevizError(f"{runner.name}: the patch grid {grid} does not tile the "
                                f"{height}x{width} input")
        options.update(method="pixels", patch=patch)
    else:
        pad = _pad_id(runner)
        options.update(method="layer", baseline=torch.full_like(primary[:1], pad))
    result = router_attribution(runner.module, encoded.inputs, site, token, **options)
    result.tokens = list(encoded.tokens[0]) if encoded.tokens else None
    if result.tokens is not None and len(result.tokens) != len(result.scores):
        raise RoutevizError(f"{runner.name}: {len(result.scores)} attributions for "
                            f"{len(result.tokens)} tokens; cannot pair them")
    return Explanation(result=result, model=runner.name, modality=modality,
                       source=str(meta.get("source") or item.source or ""), grid=grid)


def format_explanation(explanation: Explanation, width: int = 40) -> str:
    """Plain text for the terminal: the target, the delta, one bar per token or patch."""
    data = explanation.to_json()
    target = data["target"]
    largest = max((abs(a["attribution"]) for a in data["attributions"]), default=0.0) or 1.0
    unit = data["input"]["unit"]
    lines = [(f"{data['model']}: {target['site']} {unit} {target['token']} "
              f"({target['text']!r}) -> expert {target['expert']}, logit {target['logit']:.4f} "
              f"(baseline {target['baseline_logit']:.4f})"),
             (f"sum of attributions {data['sum_attributions']:.4f}; convergence delta "
              f"{data['convergence_delta']:.4g} ({data['n_steps']} steps)")]
    for a in data["attributions"]:
        bar = "#" * round(abs(a["attribution"]) / largest * width)
        sign = "-" if a["attribution"] < 0 else "+"
        lines.append(f"{a['index']:>5} {a['text']!r:<16.16} {a['attribution']:>+10.4f} {sign}{bar}")
    return "\n".join(lines)


def attribute_item(runner, item, site: str, token: int, expert: int | None = None,
                   **options) -> AttributionResult:
    """explain(...).result: the attribution with the token strings, for a page to colour."""
    return explain(runner, item, site, token, expert, **options).result
