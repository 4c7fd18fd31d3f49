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

Built-in adapters live in the `tracers` package; third-party packages add theirs through
the entry-point group `routeviz.tracers`, whose objects are called once with no arguments
and call `routeviz.register(...)` themselves.
"""

from __future__ import annotations

import importlib
import warnings
import weakref
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable

from torch import nn

Adapter = Callable[[nn.Module, tuple, object], object]


@dataclass(frozen=True)
class AdapterSpec:
    """An adapter plus how the trace attaches it.

    hook: "forward" calls read(module, inputs, output) after the module runs; "pre" calls
          read(module, args, kwargs) before it (for routing passed in as arguments).
    fallback: used only where no other site is in the same parent block.
    describe: module -> dict saved in the run's config under sites[<name>].
    first_exit: an exit head; per unit only the first (lowest-layer) exit is kept.
    """

    read: Adapter
    hook: str = "forward"
    fallback: bool = False
    describe: Callable[[nn.Module], dict] | None = None
    first_exit: bool = False

    def __call__(self, module, inputs, output):
        return self.read(module, inputs, output)


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
        self._loaded = False

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
        self.load_plugins()
        found = {}
        for resolve in self.resolvers.values():
            found.update(resolve(block) or {})
        return found

    def register_matcher(self, name: str, predicate, adapter: Adapter) -> None:
        self.matchers = [m for m in self.matchers if m.name != name]
        self.matchers.append(_Matcher(name, predicate, adapter))

    def lookup(self, module: nn.Module) -> Adapter | None:
        self.load_plugins()
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
        self.load_plugins()
        names = sorted({cls.__name__ for cls in self.by_class})
        return (names + [f"<{m.name}>" for m in self.matchers]
                + [f"<{name}>" for name in self.resolvers])

    def load_plugins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from tracers import BUILTIN

        loaded = set()
        for module_name in BUILTIN:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:  # a dependency of the tracer is missing: say so
                    warnings.warn(f"routeviz: tracer {module_name} unavailable: {exc}")
                continue
            module.register()
            loaded.add(module_name)
        for ep in entry_points(group="routeviz.tracers"):
            if ep.value.split(":")[0] in loaded:
                continue
            try:
                ep.load()()
            except Exception as exc:  # a broken plugin must not break tracing of the rest
                warnings.warn(f"routeviz: tracer plugin {ep.name!r} failed to load: {exc}")


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
    """Trace a module class or instance as an early-exit head (see tracers.early_exit)."""
    from tracers.early_exit import exit_adapter

    REGISTRY.register(target, exit_adapter(threshold=threshold, confidence=confidence,
                                           final=final, per_example=per_example))


def register_linear_gate(target, k: int, normalize: bool = True) -> None:
    """Trace a plain linear gate (returns router logits) as top-`k` of their softmax."""
    from tracers.linear_gate import linear_gate_adapter

    REGISTRY.register(target, linear_gate_adapter(k, normalize))


def register_selection(target) -> None:
    """Trace a module that selects tokens (mixture-of-depths capacity routing, token
    pruning): its output holds the kept token indices [b, c] (see tracers.selection)."""
    from tracers.selection import selection_adapter

    REGISTRY.register(target, selection_adapter)


def register_matcher(name: str, predicate, adapter: Adapter) -> None:
    """Trace every module for which `predicate(module)` is true with `adapter`."""
    REGISTRY.register_matcher(name, predicate, adapter)
