"""Which adapter reads which routing module.

An adapter is a small function `(module, inputs, output) -> RouteEvent | list[RouteEvent] |
None` (None: nothing to record this call). Adapters are found by the module's class, walking
its MRO, so a subclass of a registered router is traced without code; a *matcher* (a
predicate on the module) covers families recognised by contract rather than by class, such
as every transformers `*TopKRouter`.

A *block resolver* looks at a module and names children to trace with adapters it builds
for them (e.g. a plain `nn.Linear` gate whose k the parent block holds). An adapter wrapped
in `AdapterSpec` can ask for a forward pre-hook (it then reads the module's arguments), be a
fallback (dropped where another site in the same block already records the decision), and
describe its module for the run's config (expert count, capacity).

The generic adapters live in `routeviz.adapters` and are registered by the registry itself;
family-specific and sample-model adapters (`tracers/`, third-party packages) come in through
the entry-point group `routeviz.tracers`: functions `register(registry)` that call this
registry's `register`, `register_block` and `register_matcher`. Each `Registry` loads them
into itself on first lookup, so a fresh `Registry()` passed to `trace(..., registry=...)`
is isolated from what was registered on the process-wide one.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from routeviz.capture.adapters import register_core
from routeviz.capture.adapters.contract import Adapter, AdapterSpec
from routeviz.capture.adapters.early_exit import exit_adapter
from routeviz.capture.adapters.linear_gate import linear_gate_adapter
from routeviz.capture.adapters.selection import selection_adapter
from routeviz.plugins import TRACERS, key, load_entry, new_entry_points

__all__ = [
    "REGISTRY",
    "Adapter",
    "AdapterSpec",
    "Registry",
    "register",
    "register_block",
    "register_exit",
    "register_linear_gate",
    "register_matcher",
    "register_selection",
]


@dataclass
class _Matcher:
    name: str
    predicate: Callable[[nn.Module], bool]
    adapter: Adapter


class Registry:
    """Adapters by module class, plus matchers tried when no class is registered."""

    def __init__(self):
        self.by_class: dict[type, Adapter] = {}
        self.by_instance = weakref.WeakKeyDictionary()  # module -> adapter; dies with the model
        self.matchers: list[_Matcher] = []
        self.resolvers: dict[str, Callable] = {}
        self._core_loaded = False
        self._plugins_loaded: set[str] = set()  # keys of the entry points loaded

    def register(self, target, adapter: Adapter) -> None:
        if isinstance(target, nn.Module):
            self.by_instance[target] = adapter
            return
        if not (isinstance(target, type) and issubclass(target, nn.Module)):
            raise TypeError(f"register() takes an nn.Module subclass or instance, got {target!r}")
        self.by_class[target] = adapter

    def register_block(self, name: str, resolve) -> None:
        """`resolve(block) -> {child_name: adapter} | None`, tried on every module."""
        self.resolvers[name] = resolve

    def children(self, block: nn.Module) -> dict:
        """Children of `block` that a block resolver names, with their adapters."""
        self._ready()
        found = {}
        for resolve in self.resolvers.values():
            found.update(resolve(block) or {})
        return found

    def register_matcher(self, name: str, predicate, adapter: Adapter) -> None:
        self.matchers = [m for m in self.matchers if m.name != name]
        self.matchers.append(_Matcher(name, predicate, adapter))

    def lookup(self, module: nn.Module) -> Adapter | None:
        self._ready()
        if module in self.by_instance:
            return self.by_instance[module]
        for cls in type(module).__mro__:
            if cls in self.by_class:
                return self.by_class[cls]
        for matcher in self.matchers:
            if matcher.predicate(module):
                return matcher.adapter
        return None

    def describe(self) -> list[str]:
        """Names of what lookups search, for error messages."""
        self._ready()
        names = sorted({cls.__name__ for cls in self.by_class})
        return (names + [f"<{m.name}>" for m in self.matchers]
                + [f"<{name}>" for name in self.resolvers])

    def load_plugins(self) -> None:
        """The core's adapters (once), then each `routeviz.tracers` plugin not loaded yet,
        into this registry. A trace calls it as it starts, so a package installed while the
        process runs is seen by the next trace."""
        if not self._core_loaded:
            self._core_loaded = True
            register_core(self)
        for ep in new_entry_points(TRACERS, skip=self._plugins_loaded):
            self._plugins_loaded.add(key(ep))
            plugin = load_entry(ep, TRACERS)
            if plugin is None:
                continue
            try:
                plugin(self)
            except Exception as exc:  # a broken plugin must not break tracing of the rest
                warnings.warn(f"routeviz: tracer plugin {ep.name!r} failed to register: {exc}")

    def _ready(self) -> None:
        if not self._core_loaded:
            self.load_plugins()


REGISTRY = Registry()


def register(target, adapter: Adapter) -> None:
    """Trace every module of class `target` (and its subclasses), or the one module
    instance `target`, with `adapter`."""
    REGISTRY.register(target, adapter)


def register_block(name: str, resolve) -> None:
    """Trace the children that `resolve(block) -> {child_name: adapter}` names."""
    REGISTRY.register_block(name, resolve)


def register_exit(target, threshold: float = 0.9, confidence=None, final: bool = False,
                  per_example: bool | None = None) -> None:
    """Trace a module class or instance as an early-exit head (see routeviz.capture.adapters.early_exit)."""
    REGISTRY.register(target, exit_adapter(threshold=threshold, confidence=confidence,
                                           final=final, per_example=per_example))


def register_linear_gate(target, k: int, normalize: bool = True) -> None:
    """Trace a plain linear gate (returns router logits) as top-`k` of their softmax."""
    REGISTRY.register(target, linear_gate_adapter(k, normalize))


def register_selection(target) -> None:
    """Trace a module that selects tokens (mixture-of-depths capacity routing, token
    pruning): its output holds the kept token indices [b, c] (see routeviz.capture.adapters.selection)."""
    REGISTRY.register(target, selection_adapter)


def register_matcher(name: str, predicate, adapter: Adapter) -> None:
    """Trace every module for which `predicate(module)` is true with `adapter`."""
    REGISTRY.register_matcher(name, predicate, adapter)
