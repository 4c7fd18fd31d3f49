"""How the core finds what is built around it: entry points, read each time they are asked for.

Three groups, declared in a distribution's entry points (see pyproject.toml):

- `routeviz.tracers`: a function `register(registry: routeviz.registry.Registry) -> None` that
  calls `registry.register(...)`, `registry.register_block(...)` or
  `registry.register_matcher(...)` for the routing modules it knows.
- `routeviz.models`: a `ModelSpec`, or a list/tuple of them (one family of models).
- `routeviz.datasets`: a `DatasetSpec`, or a list/tuple of them.

A plugin that fails to load is skipped with a warning naming it; the rest still load. The
entry points are read again whenever `sys.path` or a folder on it changes: a distribution put
on `sys.path` is seen by the next call (a `Registry`
loads each tracer plugin once, and new ones when a trace starts).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from routeviz.errors import choose

TRACERS = "routeviz.tracers"
MODELS = "routeviz.models"
DATASETS = "routeviz.datasets"


@dataclass(frozen=True)
class ModelSpec:
    """A model `routeviz models` lists and `routeviz trace --model NAME` loads: the one place
    its metadata is written."""

    name: str
    modality: str  # "text" or "image"
    routing: tuple  # routing kinds it records: expert, keep, exit, merge
    datasets: tuple  # dataset names that suit it (`routeviz trace --dataset`)
    description: str
    load: Callable  # (name) -> routeviz.models.ModelRunner; import heavy code inside it
    examples: tuple = ()  # `Example`s ready to run (the app's "Try" buttons)

    def info(self) -> dict:
        return {"name": self.name, "modality": self.modality, "routing": list(self.routing),
                "datasets": list(self.datasets), "description": self.description}


@dataclass(frozen=True)
class Example:
    """An input a model's spec offers to try: a short text, or item `index` of a dataset."""

    title: str  # what the button says
    text: str | None = None
    dataset: str | None = None
    index: int = 0

    def item(self):
        """The input as a `routeviz.inputs.Item` (a dataset item keeps its tags)."""
        from routeviz.runs.inputs import Item

        if self.text is not None:
            return Item(text=self.text, source=self.title)
        return load_dataset(self.dataset, self.index + 1)[self.index]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset `routeviz trace --dataset NAME` reads."""

    name: str
    description: str
    load: Callable  # (limit: int | None) -> list[routeviz.inputs.Item] with example tags


def lazy(target: str) -> Callable:
    """A function that imports `"module:function"` when called and calls it, so a spec can
    name heavy code without importing it at listing time."""
    module_name, _, attr = target.partition(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module_name), attr)(*args, **kwargs)

    call.__qualname__ = f"lazy({target!r})"
    return call


def new_entry_points(group: str, skip=()) -> list:
    """The entry points of `group` (first of a name wins) whose `key` is not in `skip`."""
    found, names = [], set()
    for ep in _entry_points(group):
        if ep.name not in names and key(ep) not in skip:
            names.add(ep.name)
            found.append(ep)
    return found


_READ: dict = {}  # group -> (sys.path signature, its entry points): one reading kept


def _entry_points(group: str):
    """entry_points(group=group), read again only when sys.path or the modification time of
    a folder on it changed (installing or removing a distribution adds or removes a
    `*.dist-info` folder there): reading every distribution's metadata costs ~10 ms, and a
    trace asks as it starts."""
    signature = []
    for entry in sys.path:
        try:
            signature.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            signature.append((entry, None))
    signature = tuple(signature)
    read = _READ.get(group)
    if read is None or read[0] != signature:
        read = _READ[group] = (signature, tuple(entry_points(group=group)))
    return read[1]


def key(ep) -> str:
    return f"{ep.name} = {ep.value}"


def load_entry(ep, group: str):
    """The object `ep` names, or None (with a warning) if it fails to load."""
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin must not break the rest
        warnings.warn(f"routeviz: plugin {ep.name!r} ({group}) failed to load: {exc}")
        return None


def load_group(group: str) -> list[tuple[str, object]]:
    """(entry-point name, loaded object) for every plugin of `group` that loads."""
    loaded = [(ep.name, load_entry(ep, group)) for ep in new_entry_points(group)]
    return [(name, obj) for name, obj in loaded if obj is not None]


def _specs(group: str, kind: type) -> dict:
    found = {}
    for ep_name, obj in load_group(group):
        specs = list(obj) if isinstance(obj, (list, tuple)) else [obj]
        if not all(isinstance(spec, kind) for spec in specs):
            warnings.warn(f"routeviz: plugin {ep_name!r} ({group}) is not a {kind.__name__} "
                          "or a list of them; skipped")
            continue
        for spec in specs:
            found.setdefault(spec.name, spec)
    return found


def model_specs() -> dict[str, ModelSpec]:
    """Every installed model by name, in entry-point order."""
    return _specs(MODELS, ModelSpec)


def dataset_specs() -> dict[str, DatasetSpec]:
    """Every installed dataset by name, in entry-point order."""
    return _specs(DATASETS, DatasetSpec)


def load_dataset(name: str, limit: int | None = None) -> list:
    """The items of dataset `name` (at most `limit` if given)."""
    specs = dataset_specs()
    choose("dataset", name, specs)
    return specs[name].load(limit)
