"""The importers installed: the `routeviz.importers` entry-point group (routeviz's own
formats are listed there in pyproject.toml, a third-party package adds its own the same way),
read through `routeviz.plugins` like the other groups. An entry is a
`routeviz.importers.base.Importer`."""

from __future__ import annotations

import importlib
import warnings

from routeviz.errors import choose
from routeviz.importers.base import Importer
from routeviz.plugins import load_group

GROUP = "routeviz.importers"
# The built-in entries, as pyproject.toml lists them: an install made before they were added
# (an editable checkout not reinstalled) still finds them.
BUILTINS = {"vllm": "routeviz.importers.vllm:IMPORTER",
            "sglang": "routeviz.importers.sglang:IMPORTER",
            "sglang-recorder": "routeviz.importers.sglang_recorder:IMPORTER",
            "megatron": "routeviz.importers.megatron:IMPORTER",
            "npy": "routeviz.importers.npy:IMPORTER"}


def importers() -> dict[str, Importer]:
    """Every installed importer by format name (entry points first, then any built-in the
    installed metadata does not list yet)."""
    found = {}
    for ep_name, obj in load_group(GROUP):
        if not isinstance(obj, Importer):
            warnings.warn(f"routeviz: plugin {ep_name!r} ({GROUP}) is not an Importer; skipped")
            continue
        found.setdefault(obj.name, obj)
    for name, target in BUILTINS.items():
        if name not in found:
            module, _, attr = target.partition(":")
            try:
                found[name] = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                warnings.warn(f"routeviz: importer {name!r} failed to load: {exc}")
    return found


def get(name: str) -> Importer:
    found = importers()
    choose("import format", name, found)
    return found[name]
