"""Bundled datasets for `routeviz trace --dataset NAME`: each yields routeviz Items.

A dataset function takes `limit` (None for all) and returns a list of
`routeviz.inputs.Item` with example-level tags; models add token-level tags in `encode`.
"""

from __future__ import annotations

import importlib

from routeviz.errors import choose

# name -> ("module:function", description)
DATASETS: dict[str, tuple[str, str]] = {
    "stdlib": ("sample_models.text_data:stdlib_dataset",
               "Python stdlib source (code) and pydoc topics (prose), tagged"),
    "glyphs": ("sample_models.glyphs:glyph_dataset",
               "synthetic glyph images with patch (region) and image (letter, location, fg, bg) tags"),
    "dae-syn": ("sample_models.dae_syn_data:dae_syn_dataset",
                "the 4096 DAE-Syn images with their 32 attribute tags"),
}


def load_dataset(name: str, limit: int | None = None):
    choose("dataset", name, DATASETS)
    module_name, func = DATASETS[name][0].split(":")
    return getattr(importlib.import_module(module_name), func)(limit)
