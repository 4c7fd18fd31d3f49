"""What an adapter is (`AdapterSpec`), and small helpers adapters share: recognise a class by
name along its MRO (so transformers classes need not be imported to be matched) and find
tensors by role in an output. Plugins (`tracers/`, third-party packages) may import these."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Adapter = Callable[[nn.Module, tuple, object], object]


@dataclass(frozen=True)
class AdapterSpec:
    """An adapter plus how the trace attaches it.

    hook: "forward" calls read(module, inputs, output) after the module runs; "pre" calls
          read(module, args, kwargs) before it (for routing passed in as arguments).
    fallback: used only where no other site in the same parent block.
    describe: module -> dict saved in the run's config under sites[<name>].
    first_exit: an exit head; per unit only the first (lowest-layer) exit is kept.
    edit: how `routeviz.intervene` re-decides the site (routeviz.capture.adapters.edits.Editor),
          or None where it cannot.
    """

    read: Adapter
    hook: str = "forward"
    fallback: bool = False
    describe: Callable[[nn.Module], dict] | None = None
    first_exit: bool = False
    edit: object = None

    def __call__(self, module, inputs, output):
        return self.read(module, inputs, output)


def class_named(pattern: str):
    """Predicate: some class in the module's MRO has a name matching `pattern` (a regex)."""
    compiled = re.compile(pattern)

    def predicate(module) -> bool:
        return any(compiled.search(cls.__name__) for cls in type(module).__mro__)

    return predicate


def tensors(value) -> list:
    """The tensors in an output or argument list (one level of tuple/list/dict)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


def order_by(score, *tensors_k):
    """Reorder the last dim of each [.., k] tensor so `score` is descending (rank 0 = top).

    Stable, on the device: no host sync.
    """
    if score.shape[-1] < 2:
        return tensors_k
    order = score.argsort(dim=-1, descending=True, stable=True)  # [.., k]
    return tuple(t.gather(-1, order) for t in tensors_k)
