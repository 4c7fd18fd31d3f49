"""How a routing site is re-decided under an intervention (`routeviz.intervene`).

An adapter that can be intervened on carries an `Editor` (`AdapterSpec.edit`): what it can
change (`can`) and a function that makes the change, hooked on the routing module by
`routeviz.intervene` ahead of any tracer hook, so the trace records the edited decision.

- hook "forward": `apply(module, args, kwargs, output, plan) -> new output` (None: keep);
- hook "pre": `apply(module, args, kwargs, plan) -> (args, kwargs)` (None: keep).

`plan` is a `SitePlan`: experts to ablate, an expert to force, a new top-k, and the kinds of
decision to turn off (`keep`: every token kept; `merge`: nothing merged; `exit`: no early
exit). Families put their re-selection in their own adapter module and share the helpers
here: `edited_scores` (ablated experts to -inf, a forced expert just above the best) and
`rerun_with` (the module's own forward with one setting changed, on a shallow twin, so the
user's module is never modified).

Legend: e - experts, k - top-k.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from routeviz.errors import RoutevizError

# What an editor can do: expert edits, and the decision kinds it can turn off.
EXPERT_EDITS = frozenset({"ablate", "force", "top_k"})
DISABLE_KINDS = ("keep", "merge", "exit")


@dataclass(frozen=True)
class SitePlan:
    """The intervention at one site."""

    ablate: frozenset = frozenset()  # expert ids the router may not choose
    force: int | None = None  # expert every token takes at rank 0
    top_k: int | None = None  # experts per token (None: the site's own)
    disable: frozenset = frozenset()  # decision kinds turned off: keep, merge, exit
    memo: dict = field(default_factory=dict, compare=False, repr=False)  # an editor's
    # findings about its module, kept for the block (e.g. a check done on the first call)


@dataclass(frozen=True)
class Editor:
    """An adapter's intervention: what it `can` change and how (see the module docstring)."""

    apply: Callable
    can: frozenset
    hook: str = "forward"


def edited_scores(scores: torch.Tensor, plan: SitePlan) -> torch.Tensor:
    """Router scores [.., e] with the plan's expert edits: ablated experts at -inf; a forced
    expert swaps scores with the row's best and is raised just above it, so it is the top
    choice and the rest keep their order."""
    n_experts = scores.shape[-1]
    wanted = set(plan.ablate) | ({plan.force} if plan.force is not None else set())
    if any(not 0 <= e < n_experts for e in wanted):
        raise RoutevizError(f"expert {max(wanted)} does not exist: this site has "
                            f"{n_experts} experts (0..{n_experts - 1})")
    scores = scores.clone()
    if plan.ablate:
        scores[..., sorted(plan.ablate)] = float("-inf")
    if plan.force is not None:
        best, top = scores.max(dim=-1, keepdim=True)  # [.., 1]
        forced = scores[..., plan.force:plan.force + 1].clone()
        scores = scores.scatter(-1, top, forced)
        scores[..., plan.force:plan.force + 1] = torch.nextafter(
            best, torch.full_like(best, float("inf")))
    return scores


def check_top_k(k: int, n_experts: int, plan: SitePlan) -> None:
    left = n_experts - len(plan.ablate)
    if not 1 <= k <= left:
        raise RoutevizError(f"top-k {k}: this site can choose 1..{left} experts "
                            f"({n_experts} minus {len(plan.ablate)} ablated)")


def rerun_with(module, args, kwargs, **settings):
    """The module's own forward on a shallow copy whose `settings` differ (hooks do not fire
    and `module` is left as it was)."""
    twin = copy.copy(module)
    twin.__dict__.update(settings)
    return type(module).forward(twin, *args, **kwargs)


def replace_argument(args, kwargs, index: int, name: str, value):
    """(args, kwargs) with argument `name` (positional `index`) set to `value`."""
    if len(args) > index:
        args = args[:index] + (value,) + args[index + 1:]
    else:
        kwargs = {**kwargs, name: value}
    return args, kwargs


def argument(args, kwargs, index: int, name: str, default=None):
    return args[index] if len(args) > index else kwargs.get(name, default)
