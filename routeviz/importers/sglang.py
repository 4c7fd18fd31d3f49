"""`sglang`: routing SGLang returns with `--enable-return-routed-experts` and
`return_routed_experts: true` per request.

`meta_info.routed_experts` is base64 of the host buffer's raw row-major bytes, `[rows,
num_hidden_layers · top_k]`, in `meta_info.routed_experts_dtype` (int32 where the field is
absent, as before it existed; uint16 / uint8 possible). Rows cover the sequence from
`routed_experts_start_len` (0 unless the request set it) to its last token but one. Bodies of
`/generate` (one, or a list for a batch) and of the OpenAI endpoints (`meta_info` on the body
or on each choice) are read. Raw bytes do not say their layer count: `--model` does (the
axis is `num_hidden_layers`, dense layers all zero). No gate weights; `rank_order` is
`unknown`.
"""

from __future__ import annotations

import numpy as np

from routeviz.errors import RoutevizError
from routeviz.importers.base import Capture, Importer, Sequence, decode_base64
from routeviz.importers.bodies import read_bodies

DTYPES = ("int32", "int64", "int16", "uint16", "int8", "uint8")


def read(paths, options) -> Capture:
    layout = options.get("layout")
    sequences, versions = [], []
    for path in paths:
        for body, where in read_bodies(path):
            for item, at in _items(body, where):
                seq, version = _sequence(body, item, at, layout)
                sequences.append(seq)
                versions.append(version)
    return Capture(sequences, version=", ".join(dict.fromkeys(versions)) or "none",
                   rank_order="unknown", files=[str(p) for p in paths])


def _items(body: dict, where: str):
    if "meta_info" in body:
        return [(body, where)]
    choices = body.get("choices")
    if isinstance(choices, list) and choices:
        return [(c if isinstance(c, dict) else {}, f"{where} choice {i}")
                for i, c in enumerate(choices)]
    raise RoutevizError(f"{where}: no meta_info or choices: not an SGLang response body")


def _sequence(body: dict, item: dict, where: str, layout) -> tuple[Sequence, str]:
    meta = item.get("meta_info") if isinstance(item.get("meta_info"), dict) else {}
    value = meta.get("routed_experts", item.get("routed_experts"))
    if value is None:
        raise RoutevizError(f"{where}: no meta_info.routed_experts (start SGLang with "
                            "--enable-return-routed-experts and ask return_routed_experts)")
    dtype = meta.get("routed_experts_dtype")
    version = f"routed_experts_dtype {dtype}" if dtype else "int32 (no routed_experts_dtype)"
    if dtype is None:
        dtype = "int32"
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise RoutevizError(f"{where}: unknown routed_experts_dtype {dtype!r}; known: "
                            f"{', '.join(DTYPES)}")
    raw = decode_base64(value, where)
    itemsize = np.dtype(dtype).itemsize
    if len(raw) % itemsize:
        raise RoutevizError(f"{where}: {len(raw)} bytes is not a whole number of {dtype} "
                            "values (a truncated body?)")
    flat = np.frombuffer(raw, dtype=dtype).astype(np.int64)
    start = meta.get("routed_experts_start_len") or 0
    if not _count(start):
        raise RoutevizError(f"{where}: routed_experts_start_len {start!r} is not a count")
    total = None
    if _count(meta.get("prompt_tokens")) and _count(meta.get("completion_tokens")):
        total = meta["prompt_tokens"] + meta["completion_tokens"]
    experts = _shape(flat, total - 1 - start if total is not None else None, layout, where)
    ids = None
    prompt, output = body.get("input_ids", item.get("input_ids")), item.get("output_ids")
    if isinstance(prompt, list) and isinstance(output, list):
        ids = list(prompt) + list(output)
    return Sequence(experts, where, token_ids=ids, start=start, trailing=1), version


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shape(flat: np.ndarray, rows: int | None, layout, where: str) -> np.ndarray:
    """[rows, layers, k] from the flat values: the layer count from --model, the row count
    from the body's token counts where it gives them (a mismatch is a truncated body)."""
    if layout is None or layout.n_layers is None:
        raise RoutevizError(f"{where}: SGLang's routed_experts are flat bytes; --model gives "
                            "their layer count and top-k")
    for n_axis in dict.fromkeys((layout.n_layers, len(layout.moe_layers))):
        if rows is not None and rows > 0:
            width = len(flat) / rows
            k = width / n_axis
            fits = width.is_integer() and k.is_integer() and (layout.top_k in (None, int(k)))
        else:
            k = layout.top_k or 0
            fits = k > 0 and len(flat) % (n_axis * k) == 0
        if fits and k:
            return flat.reshape(-1, n_axis, int(k))
    if rows == 0 and len(flat) == 0:
        return np.zeros((0, layout.n_layers, layout.top_k or 1), np.int64)
    expected = f"{rows} rows x " if rows is not None else ""
    raise RoutevizError(f"{where}: {len(flat)} expert ids do not fill {expected}"
                        f"{layout.n_layers} layers x top-{layout.top_k} (a truncated body, or "
                        "another model?)")


def sniff(path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:200000]
    except OSError:
        return False
    return '"meta_info"' in head and '"routed_experts"' in head


IMPORTER = Importer("sglang", "SGLang return_routed_experts: /generate or OpenAI-endpoint "
                    "bodies (base64 raw bytes + routed_experts_dtype)", read, sniff)
