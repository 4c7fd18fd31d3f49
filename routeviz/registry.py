"""Which adapter reads which routing module.

An adapter is a small function `(module, inputs, output) -> RouteEvent | list[RouteEvent] |
None` (None: nothing to record this call). Adapters are found by the module's class, walking
its MRO, so a subclass of a registered router is traced without code; a *matcher* (a
predicate on the module) covers families recognised by contract rather than by class, such
as every transformers `*TopKRouter`.

Built-in adapters live in the `tracers` package; third-party packages add theirs through
the entry-point group `routeviz.tracers`, whose objects are called once with no arguments
and call `routeviz.register(...)` themselves.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable

from torch import nn

Adapter = Callable[[nn.Module, tuple, object], object]


@dataclass
class _Matcher:
    name: str
    predicate: Callable[[nn.Module], bool]
    adapter: Adapter


class Registry:
    """Adapters by module class, plus matchers tried when no class is registered."""

    def __init__(self):
        self.by_class: dict[type, Adapter] = {}
        self.matchers: list[_Matcher] = []
        self._loaded = False

    def register(self, module_class: type, adapter: Adapter) -> None:
        if not (isinstance(module_class, type) and issubclass(module_class, nn.Module)):
            raise TypeError(f"register() takes an nn.Module subclass, got {module_class!r}")
        self.by_class[module_class] = adapter

    def register_matcher(self, name: str, predicate, adapter: Adapter) -> None:
        self.matchers = [m for m in self.matchers if m.name != name]
        self.matchers.append(_Matcher(name, predicate, adapter))

    def lookup(self, module: nn.Module) -> Adapter | None:
        self.load_plugins()
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
        return names + [f"<{m.name}>" for m in self.matchers]

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


def register(module_class: type, adapter: Adapter) -> None:
    """Trace every module of `module_class` (and its subclasses) with `adapter`."""
    REGISTRY.register(module_class, adapter)


def register_matcher(name: str, predicate, adapter: Adapter) -> None:
    """Trace every module for which `predicate(module)` is true with `adapter`."""
    REGISTRY.register_matcher(name, predicate, adapter)
