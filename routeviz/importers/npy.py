"""`npy`: plain `[tokens, layers, top_k]` integer arrays, the shape RL frameworks normalise
routing to (verl, AReaL, NeMo-RL and prime-rl replay it in this form). One `.npy` file is one
example; an `.npz` holds one example per array, in stored order. -1 marks an empty slot.
Nothing says what the order within a token's top-k means, so `rank_order` is `unknown`
(`--rank-order` says otherwise)."""

from __future__ import annotations

import numpy as np

from routeviz.errors import RoutevizError
from routeviz.importers.base import Capture, Importer, Sequence, as_experts


def read(paths, options) -> Capture:
    sequences = []
    for path in paths:
        for name, array in _arrays(path):
            sequences.append(Sequence(as_experts(array, name), source=name))
    return Capture(sequences, version="numpy [tokens, layers, top_k]", rank_order="unknown",
                   files=[str(p) for p in paths])


def _arrays(path):
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 — numpy's header parser raises SyntaxError & co.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RoutevizError(f"{path.name}: not a readable .npy/.npz array ({first})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return [(f"{path.name}:{key}", loaded[key]) for key in loaded.files]
    return [(path.name, loaded)]


def sniff(path) -> bool:
    return path.suffix in (".npy", ".npz")


IMPORTER = Importer("npy", "[tokens, layers, top_k] integer arrays (.npy, one example each; "
                    ".npz, one per array)", read, sniff)
