"""What every importer hands the common layer: the routing of some sequences, as arrays.

Dimension legend: r - rows (routed tokens), l - the source's layer axis, k - choices per token.

An importer reads its files into a `Capture` and knows nothing of the store, the model or
the token file; `routeviz.importers.common` maps the layer axis onto the model's layers,
lines tokens up and writes the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from routeviz.errors import RoutevizError

RANK_ORDERS = ("score", "expert-id", "unknown")  # what a choice's position in its top-k means


@dataclass
class Sequence:
    """One example: the experts each of its routed tokens took at each layer."""

    experts: np.ndarray  # [r, l, k] int64, -1 where nothing was chosen (padding)
    source: str  # where it came from: a file name, "#i" for the i-th in it
    weights: np.ndarray | None = None  # [r, l, k] float32 gate weights; None: not given
    token_ids: list | None = None  # the whole sequence's ids, where the source carries them
    start: int | None = 0  # token position of row 0 (a prompt offset); None: not said
    trailing: int = 0  # tokens after the last row (1 where rows = tokens - 1: vLLM, SGLang)


@dataclass
class Capture:
    """What one importer read from its files."""

    sequences: list[Sequence]
    version: str  # the variant of the format that was sniffed, e.g. "openai-0.22+ (base64 .npy)"
    rank_order: str  # RANK_ORDERS: is position 0 of a token's top-k its top choice?
    files: list[str] = field(default_factory=list)
    layers: list | None = None  # model layer of each layer-axis entry where the source
    # names it (Megatron); None: the common layer fits the axis to the model's layout
    notes: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # format-specific facts for the run's config


@dataclass(frozen=True)
class Importer:
    """An entry of the `routeviz.importers` group."""

    name: str  # the FORMAT of `routeviz import FORMAT`
    description: str
    read: Callable  # (paths: list[pathlib.Path], options: dict) -> Capture
    sniff: Callable | None = None  # (path) -> bool: does this file look like this format?


def as_experts(array, where: str) -> np.ndarray:
    """An integer array [r, l, k] as int64, or a one-line error saying what is wrong."""
    array = np.asarray(array)
    if array.dtype == object or not np.issubdtype(array.dtype, np.integer):
        raise RoutevizError(f"{where}: expert ids must be integers, got {array.dtype}")
    if array.ndim != 3:
        raise RoutevizError(f"{where}: expected an array [tokens, layers, top_k], got shape "
                            f"{tuple(array.shape)}")
    return array.astype(np.int64, copy=False)


def nested_experts(value, where: str) -> np.ndarray:
    """Nested JSON lists [tokens][layers][top_k] as an array (ragged lists refused)."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise RoutevizError(f"{where}: routed experts are ragged nested lists") from None
    if array.size == 0:
        return np.zeros((0, 0, 0), np.int64)
    return as_experts(array, where)


def decode_base64(text, where: str) -> bytes:
    import base64
    import binascii

    if not isinstance(text, str):
        raise RoutevizError(f"{where}: expected a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise RoutevizError(f"{where}: not valid base64 (a truncated body?)") from None


def load_npy_bytes(data: bytes, where: str) -> np.ndarray:
    """A `.npy` file's bytes as an array, without pickle."""
    import io

    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 — numpy's header parser raises SyntaxError & co.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RoutevizError(f"{where}: not a readable .npy array ({first})") from None
