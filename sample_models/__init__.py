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


_add(SampleEntry("text-moe", "text", ("expert", "keep", "exit"), ("stdlib",),
                 "small code-and-prose LM: top-2 MoE, mixture-of-depths, per-token early exit",
                 "sample_models.text_moe:load"))
_add(SampleEntry("glyph-vit", "image", ("keep", "merge", "expert", "exit"), ("glyphs",),
                 "small ViT trained on glyph images: token dropping/merging, MoE, early exit",
                 "sample_models.glyph_vit:load"))
for _strategy in ("tag", "hash", "monolithic", "top-k", "st-gumbel", "reinforce"):
    _add(SampleEntry(f"dae-syn-{_strategy}", "image", ("expert",), ("dae-syn",),
                     f"DAE-Syn discrete autoencoder, 4 routers x "
                     f"{1 if _strategy == 'monolithic' else 8} subnetwork(s), {_strategy} routing",
                     "sample_models.dae_syn:load"))
_add(SampleEntry("minilm-moe", "text", ("expert", "keep", "merge", "exit"), ("stdlib",),
                 "pretrained all-MiniLM-L6-v2 with FFN experts, token pruning, early exit",
                 "sample_models.minilm_moe:load"))
_add(SampleEntry("dinov2-small", "image", ("expert", "keep", "merge", "exit"), ("glyphs",),
                 "pretrained DINOv2-S with FFN experts, token pruning/merging, early exit",
                 "sample_models.dinov2_small:load"))
