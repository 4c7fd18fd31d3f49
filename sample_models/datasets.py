"""Bundled datasets for `routeviz trace --dataset NAME`, declared in pyproject.toml under the
`routeviz.datasets` entry-point group.

A dataset's `load(limit)` (None for all) returns a list of `routeviz.inputs.Item` with
example-level tags; models add token-level tags in `encode`. Its module is imported only then.
"""

from __future__ import annotations

from routeviz.plugins import DatasetSpec, lazy

STDLIB = DatasetSpec("stdlib", "Python stdlib source (code) and pydoc topics (prose), tagged",
                     lazy("sample_models.text_data:stdlib_dataset"))
GLYPHS = DatasetSpec("glyphs", "synthetic glyph images with patch (region) and image "
                     "(letter, location, fg, bg) tags", lazy("sample_models.glyphs:glyph_dataset"))
DAE_SYN = DatasetSpec("dae-syn", "the 4096 DAE-Syn images with their 32 attribute tags",
                      lazy("sample_models.dae_syn_data:dae_syn_dataset"))
SAMPLES = (STDLIB, GLYPHS, DAE_SYN)
