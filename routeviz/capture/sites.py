"""Which modules of a model the trace hooks (its *sites*), and which MoE-looking ones it missed.

A site is a module that a registered adapter recognises: by instance, class (MRO), matcher,
or because a block resolver named it as a child of its block (e.g. a plain `nn.Linear`
gate whose k the block holds). Fallback adapters (the fused-experts pre-hook) are kept only
where nothing else in the same parent block is traced, so no decision is recorded twice.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from torch import nn

from routeviz.capture.registry import REGISTRY
from routeviz.errors import NoRoutingModules, RoutevizError

_LAYER = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")
_MOE_LOOKING = re.compile(r"moe|expert|router|gate", re.IGNORECASE)
_ROUTER_LOOKING = re.compile(r"router|gate", re.IGNORECASE)


@dataclass
class Site:
    name: str
    module: nn.Module
    adapter: object
    layer: int
    fired: int = 0

    @property
    def hook(self) -> str:
        return getattr(self.adapter, "hook", "forward")

    def describe(self) -> dict:
        describe = getattr(self.adapter, "describe", None)
        return dict(describe(self.module) or {}) if describe is not None else {}


def site_config(sites: list[Site], config: dict) -> dict:
    """What the sites' adapters say about their modules, for the run's config: `sites`
    ({name: {n_experts, top_k, expert_capacity ...}}), and `n_experts` / `top_k` where the
    given config lacks them ({site: n} when sites differ, else the one value)."""
    described = {s.name: s.describe() for s in sites}
    described = {name: info for name, info in described.items() if info}
    if not described:
        return {}
    out = {"sites": config.get("sites") or described}
    for key in ("n_experts", "top_k", "slots_per_expert"):
        values = {name: info[key] for name, info in described.items() if key in info}
        if config.get(key) is None and values:
            out[key] = values.popitem()[1] if len(set(values.values())) == 1 else values
    return out


def layer_of(name: str, fallback: int = 0) -> int:
    match = _LAYER.search(name)
    return int(match.group(1)) if match else fallback


def find_sites(model: nn.Module, include=None, registry=None) -> list[Site]:
    """Every module a registered adapter recognises (restricted to `include` if given), in
    `registry` (default: the process-wide one)."""
    registry = REGISTRY if registry is None else registry
    registry.load_plugins()  # tracer plugins installed since the last trace
    adapters = {}  # qualified name -> (module, adapter), in model order
    for name, module in model.named_modules():
        adapter = registry.lookup(module)
        if adapter is not None:
            adapters[name] = (module, adapter)
        for child_name, child_adapter in registry.children(module).items():
            child = module.get_submodule(child_name)
            qualified = f"{name}.{child_name}" if name else child_name
            if registry.lookup(child) is None:
                adapters[qualified] = (child, child_adapter)
    sites = []
    for name, module in model.named_modules():
        if name not in adapters:
            if include is not None and _named_in(name, include):
                raise RoutevizError(
                    f"module {name!r} ({type(module).__name__}) was included but no adapter "
                    "knows it; add one with routeviz.register(ModuleClass, adapter)"
                )
            continue
        if include is not None and not _included(name, module, include):
            continue
        sites.append(Site(name or type(module).__name__, module, adapters[name][1],
                          layer_of(name)))
    sites = _drop_covered_fallbacks(sites)
    if not sites:
        classes = sorted({type(m).__name__ for m in model.modules()})
        shown = ", ".join(classes[:25]) + (" ..." if len(classes) > 25 else "")
        raise NoRoutingModules(
            f"no routing module found in {type(model).__name__}; searched for "
            f"{', '.join(registry.describe())}; the model has: {shown}"
        )
    return sites


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _drop_covered_fallbacks(sites: list[Site]) -> list[Site]:
    """A fallback site is dropped where a regular site shares its parent block."""
    covered = {_parent(s.name) for s in sites if not getattr(s.adapter, "fallback", False)}
    return [s for s in sites
            if not (getattr(s.adapter, "fallback", False) and _parent(s.name) in covered)]


def _named_in(name, include) -> bool:
    return any(isinstance(p, str) and fnmatch.fnmatchcase(name, p) for p in include)


def _included(name, module, include) -> bool:
    for pattern in include:
        if isinstance(pattern, str) and fnmatch.fnmatchcase(name, pattern):
            return True
        if isinstance(pattern, type) and isinstance(module, pattern):
            return True
        if pattern is module:
            return True
    return False


def looks_like_moe(name: str, module: nn.Module) -> bool:
    """Named or classed like routing (moe/expert/router/gate) and built like it: fused 3-D
    expert weights, a list of experts, or a router/gate of its own. Gated-MLP projections
    (`gate_proj`) and dense MLPs that merely live in an MoE model (`Qwen2MoeMLP`) are not."""
    words = f"{name.rsplit('.', 1)[-1]} {type(module).__name__}"
    if not _MOE_LOOKING.search(words) or name.endswith("_proj"):
        return False
    params = list(module.parameters())
    if not params:
        return False
    return (any(p.dim() >= 3 for p in params)
            or any(isinstance(m, (nn.ModuleList, nn.ModuleDict)) and len(m) > 1
                   for m in module.modules())
            or bool(_ROUTER_LOOKING.search(words)))


def unhandled_moe_modules(model: nn.Module, sites: list[Site]) -> list[str]:
    """MoE-looking modules with no traced site in, under or beside them.

    Only the outermost such module is named (not each expert inside it).
    """
    traced = [s.name for s in sites]
    missed, reported = [], []
    for name, module in model.named_modules():
        if not name or not looks_like_moe(name, module):
            continue
        if any(name.startswith(r + ".") for r in reported):
            continue
        parent = name.rsplit(".", 1)[0] + "." if "." in name else ""
        if any(t == name or t.startswith(name + ".") or name.startswith(t + ".")
               or (parent and t.startswith(parent)) for t in traced):
            continue
        reported.append(name)
        missed.append(f"{name} ({type(module).__name__})")
    return missed
