"""`routeviz.intervene`: change a model's routing for the forwards inside a block.

    with routeviz.intervene(model, ablate=["*.mlp.gate:3"], force=["model.layers.1.mlp.gate:0"],
                            top_k=1, disable=["exit"]) as edit:
        model(input_ids)                      # routed as edited
        with routeviz.trace(model, store="routes/", run="ablate-3",
                            config={"intervention": edit.config}):
            model(input_ids)                  # ... and recorded as edited

- ablate `SITE:EXPERT` (repeatable): the router may not choose that expert; it re-chooses
  among the rest and weights them as its family does (the expert's logit set to -inf
  before the family's own softmax / top-k / renormalisation);
- force `SITE:EXPERT`: every token at the site takes that expert at rank 0 (it swaps
  router scores with the token's best choice, raised just above it; the other choices
  follow in their order);
- top_k: experts per token at every site that can change it;
- disable: decision kinds turned off: `keep` (every token kept: no pruning, no capacity
  routing or capacity drops), `merge` (nothing merged), `exit` (no early exit).

SITE is a module name or a glob over the routing sites' names (`*.mlp.gate`). Each routing
site's adapter says what it can change (`AdapterSpec.edit`, routeviz.capture.adapters.edits); the
edit runs in a hook placed ahead of any other hook on the module, so a trace records the
edited decision whether it began before or after this block. A request no site can honour
is an error when the block starts. Hooks act on forwards of the thread that entered the
block only (a shared model may run untouched elsewhere), and are all removed at its end,
also after an exception.
"""

from __future__ import annotations

import fnmatch
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field

from torch import nn

from routeviz.capture.adapters.edits import DISABLE_KINDS, SitePlan
from routeviz.capture.sites import Site, find_sites
from routeviz.errors import RoutevizError


@dataclass
class Intervention:
    """The parsed request and, once started, the plan per site."""

    ablate: list = field(default_factory=list)  # "SITE:EXPERT" strings as given
    force: list = field(default_factory=list)
    top_k: int | None = None
    disable: list = field(default_factory=list)
    plans: dict = field(default_factory=dict)  # site name -> SitePlan

    @property
    def empty(self) -> bool:
        return not (self.ablate or self.force or self.top_k is not None or self.disable)

    @property
    def config(self) -> dict:
        """What the run's config records under "intervention"."""
        sites = {}
        for name, plan in self.plans.items():
            entry = {}
            if plan.ablate:
                entry["ablate"] = sorted(plan.ablate)
            if plan.force is not None:
                entry["force"] = plan.force
            if plan.top_k is not None:
                entry["top_k"] = plan.top_k
            if plan.disable:
                entry["disable"] = sorted(plan.disable)
            sites[name] = entry
        return {"ablate": list(self.ablate), "force": list(self.force), "top_k": self.top_k,
                "disable": list(self.disable), "sites": sites}


def parse_site_expert(text: str, option: str) -> tuple[str, int]:
    site, sep, expert = str(text).rpartition(":")
    if not sep or not site or not expert.strip().lstrip("-").isdigit():
        raise RoutevizError(f"{option} {text!r}: write SITE:EXPERT, e.g. "
                            "'model.layers.0.mlp.gate:3' or '*.mlp.gate:3'")
    expert_id = int(expert)
    if expert_id < 0:
        raise RoutevizError(f"{option} {text!r}: expert ids start at 0")
    return site, expert_id


def plan_sites(sites: list[Site], request: Intervention) -> dict[str, SitePlan]:
    """{site name: SitePlan} for every site the request touches; raises on a request no
    site can honour (a glob that matches no site, an edit no matched site supports)."""
    editable = {s.name: s for s in sites}
    can = {s.name: _editor(s).can if _editor(s) else frozenset() for s in sites}
    plans: dict[str, dict] = {}

    def sites_for(pattern: str, what: str, option: str) -> list[str]:
        names = [n for n in editable if fnmatch.fnmatchcase(n, pattern)]
        if not names:
            shown = ", ".join(list(editable)[:8]) + (" ..." if len(editable) > 8 else "")
            raise RoutevizError(f"{option} {pattern!r} matches no routing site (sites: {shown})")
        able = [n for n in names if what in can[n]]
        if not able:
            raise RoutevizError(f"{option} {pattern!r}: no matching site can {what.replace('_', '-')} "
                                f"({', '.join(names[:4])} cannot)")
        return able

    for text in request.ablate:
        pattern, expert = parse_site_expert(text, "--ablate")
        for name in sites_for(pattern, "ablate", "--ablate"):
            plans.setdefault(name, {}).setdefault("ablate", set()).add(expert)
    for text in request.force:
        pattern, expert = parse_site_expert(text, "--force")
        for name in sites_for(pattern, "force", "--force"):
            plan = plans.setdefault(name, {})
            if plan.get("force", expert) != expert:
                raise RoutevizError(f"--force: site {name!r} is forced to two experts "
                                    f"({plan['force']} and {expert})")
            plan["force"] = expert
    if request.top_k is not None:
        if request.top_k < 1:
            raise RoutevizError(f"--top-k {request.top_k}: must be 1 or more")
        able = [n for n in editable if "top_k" in can[n]]
        if not able:
            raise RoutevizError("--top-k: no routing site of this model can change its top-k")
        for name in able:
            plans.setdefault(name, {})["top_k"] = request.top_k
    for kind in request.disable:
        if kind not in DISABLE_KINDS:
            raise RoutevizError(f"--disable {kind!r}: choose from {', '.join(DISABLE_KINDS)}")
        able = [n for n in editable if kind in can[n]]
        if not able:
            raise RoutevizError(f"--disable {kind}: no routing site of this model makes "
                                f"{kind} decisions it can turn off")
        for name in able:
            plans.setdefault(name, {}).setdefault("disable", set()).add(kind)
    out = {}
    for name, plan in plans.items():
        if plan.get("force") in plan.get("ablate", ()):
            raise RoutevizError(f"site {name!r}: expert {plan['force']} is both ablated and forced")
        _check_experts(editable[name], plan)
        out[name] = SitePlan(ablate=frozenset(plan.get("ablate", ())), force=plan.get("force"),
                             top_k=plan.get("top_k"), disable=frozenset(plan.get("disable", ())))
    return {name: out[name] for name in editable if name in out}  # model order


def _editor(site: Site):
    return getattr(site.adapter, "edit", None)


def _check_experts(site: Site, plan: dict) -> None:
    """Expert ids within the site's experts, where the site says how many it has."""
    n_experts = site.describe().get("n_experts")
    wanted = set(plan.get("ablate", ())) | ({plan["force"]} if "force" in plan else set())
    if isinstance(n_experts, int) and wanted and max(wanted) >= n_experts:
        raise RoutevizError(f"site {site.name!r} has {n_experts} experts (0..{n_experts - 1}); "
                            f"there is no expert {max(wanted)}")
    top_k = plan.get("top_k")
    if isinstance(n_experts, int) and top_k is not None:
        left = n_experts - len(plan.get("ablate", ()))
        if top_k > left:
            raise RoutevizError(f"--top-k {top_k}: site {site.name!r} has {left} experts to "
                                "choose from")


class Intervened:
    """The context manager `intervene` returns (see the module docstring)."""

    def __init__(self, model: nn.Module, request: Intervention, registry=None, include=None):
        self.model, self.request = model, request
        self.registry, self.include = registry, include
        self._stack = ExitStack()
        self._thread: int | None = None

    @property
    def plans(self) -> dict:
        return self.request.plans

    @property
    def config(self) -> dict:
        return self.request.config

    def __enter__(self):
        if self.request.empty:  # nothing to change: no sites to look for
            return self
        sites = find_sites(self.model, self.include, registry=self.registry)
        self.request.plans = plan_sites(sites, self.request)
        self._thread = threading.get_ident()
        by_name = {s.name: s for s in sites}
        try:
            for name, plan in self.request.plans.items():
                self._hook(by_name[name], plan)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stack.close()
        return False

    def _hook(self, site: Site, plan: SitePlan) -> None:
        editor = _editor(site)
        mine = self._mine
        if editor.hook == "pre":
            def hook(module, args, kwargs):
                return editor.apply(module, args, kwargs, plan) if mine() else None
            handle = site.module.register_forward_pre_hook(hook, with_kwargs=True, prepend=True)
        else:
            def hook(module, args, kwargs, output):
                return editor.apply(module, args, kwargs, output, plan) if mine() else None
            handle = site.module.register_forward_hook(hook, with_kwargs=True, prepend=True)
        self._stack.callback(handle.remove)

    def _mine(self) -> bool:
        return threading.get_ident() == self._thread


def intervene(model: nn.Module, ablate=(), force=(), top_k: int | None = None, disable=(),
              registry=None, include=None) -> Intervened:
    """Edit `model`'s routing inside a `with` block (see the module docstring).

    ablate / force: "SITE:EXPERT" strings (SITE a name or glob of routing sites);
    top_k: experts per token; disable: any of "keep", "merge", "exit";
    registry / include: as for `routeviz.trace`.
    """
    request = Intervention(ablate=list(ablate or ()), force=list(force or ()), top_k=top_k,
                           disable=list(disable or ()))
    return Intervened(model, request, registry=registry, include=include)
