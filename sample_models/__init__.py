"""Sample conditional models that ship with routeviz, with their weights and training code.

`REGISTRY` maps a name to a `SampleEntry`; loading imports the model's module only then, so
listing the samples is cheap. Each model module exposes `load() -> routeviz.models.ModelRunner`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class SampleEntry:
    name: str
    modality: str  # "text" or "image"
    routing: tuple  # routing kinds it records: expert, keep, exit, merge
    datasets: tuple  # bundled datasets that suit it (`routeviz trace --dataset`)
    description: str
    loader: str  # "module:function" returning a ModelRunner

    def info(self) -> dict:
        return {"name": self.name, "modality": self.modality, "routing": list(self.routing),
                "datasets": list(self.datasets), "description": self.description}

    def load(self):
        module_name, func = self.loader.split(":")
        return getattr(importlib.import_module(module_name), func)(self.name)


REGISTRY: dict[str, SampleEntry] = {}


def _add(entry: SampleEntry) -> None:
    REGISTRY[entry.name] = entry
