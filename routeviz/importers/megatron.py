"""`megatron`: Megatron-Core's RouterTracer (`--moe-routing-trace-path DIR`, in training or
inference).

Each rank writes `router_trace_rank{r}.jsonl`, one `json.dumps` line per (step, block, layer):
`{"step", "stage", "block", "layer", "rank", "num_tokens", "topk", "top_indices"}` with
`top_indices` `[num_tokens][topk]` taken from the routing map, so in ascending expert order
(`rank_order` `expert-id`). Layers are the decoder layer's index in current versions
(`decoder.layers.N`, 0-based; records carry `block`) and the module's 1-based
`layer_number` in earlier ones (no `block`): the base is sniffed and recorded. MTP records
(`block` "mtp") are left out. With `--moe-routing-trace-capture-logits`, `logits_rank{r}.bin`
holds bf16 `[num_tokens, experts]` per record (`logit_offset`, `logit_bytes`,
`logit_shape`): each token's experts are then ordered by logit (`rank_order` `score`) and
weighted by the softmax over all experts.

The trace has no token ids and no sequence boundaries: tokens run step after step, and
`--tokens` cuts them into examples (one line per sequence, in order); without it the whole
trace is one example. Ranks are read in rank order; a rank whose tokens repeat another's
(a tensor- or expert-parallel replica) is read once.
"""

from __future__ import annotations

import json
import re

import numpy as np

from routeviz.errors import RoutevizError
from routeviz.importers.base import Capture, Importer, Sequence

_RANK = re.compile(r"router_trace_rank(\d+)\.jsonl$")


def read(paths, options) -> Capture:
    files = _trace_files(paths)
    notes, streams = [], []
    for rank, path in files:
        stream = _rank_stream(path, notes)
        if any(_same(stream, other) for other in streams):
            notes.append(f"rank {rank}: the same tokens as an earlier rank; read once")
            continue
        streams.append(stream)
    layer_sets = {tuple(sorted(s["experts"])) for s in streams}
    if len(layer_sets) != 1:
        raise RoutevizError("megatron: ranks trace different layers: " +
                            "; ".join(str(list(x)) for x in sorted(layer_sets)))
    raw_layers = list(layer_sets.pop())
    if not raw_layers:
        raise RoutevizError("megatron: no decoder-layer records in the trace")
    shapes = {s["experts"][layer].shape[1:] for s in streams for layer in raw_layers}
    if len(shapes) != 1:
        raise RoutevizError(f"megatron: top-k widths differ across ranks or layers {shapes}")
    experts = {layer: np.concatenate([s["experts"][layer] for s in streams])
               for layer in raw_layers}
    if len({x.shape[0] for x in experts.values()}) != 1:
        raise RoutevizError("megatron: layers traced different numbers of tokens (a layer "
                            "missing from some steps?)")
    scored = all(s["logits"] is not None for s in streams)
    base = _layer_base(raw_layers, streams, options.get("layout"))
    axis = np.stack([experts[layer] for layer in raw_layers], axis=1)  # [N, l, k]
    weights = None
    if scored:
        logits = {layer: np.concatenate([s["logits"][layer] for s in streams])
                  for layer in raw_layers}
        if len({x.shape[1] for x in logits.values()}) != 1:
            raise RoutevizError("megatron: the logits sidecar has different expert counts "
                                "across layers")
        axis, weights = _by_score(axis, np.stack([logits[layer] for layer in raw_layers], 1))
    sequences = _cut(axis, weights, options.get("token_lists"), ", ".join(
        str(p.name) for _, p in files))
    return Capture(sequences, version=f"RouterTracer jsonl, layers {base}-based"
                   + (", logits sidecar" if scored else ""),
                   rank_order="score" if scored else "expert-id",
                   files=[str(p) for _, p in files], layers=[layer - base for layer in raw_layers],
                   notes=notes, facts={"layer_base": base, "ranks": [r for r, _ in files]})


def _trace_files(paths) -> list:
    files = []
    for path in paths:
        candidates = sorted(path.glob("router_trace_rank*.jsonl")) if path.is_dir() else [path]
        for file in candidates:
            match = _RANK.search(file.name)
            if not match:
                raise RoutevizError(f"{file.name}: not a router_trace_rank{{r}}.jsonl file")
            files.append((int(match.group(1)), file))
    if not files:
        raise RoutevizError("megatron: no router_trace_rank*.jsonl in " +
                            ", ".join(str(p) for p in paths))
    return sorted(files)


def _rank_stream(path, notes: list) -> dict:
    """Per layer: the rank's tokens' experts [n, k] in step order (and logits [n, e])."""
    per_layer, logits, n_mtp = {}, {}, 0
    sidecar = path.with_name(path.name.replace("router_trace_", "logits_").replace(".jsonl", ".bin"))
    blob = sidecar.read_bytes() if sidecar.is_file() else None
    step_tokens = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutevizError(f"{path.name}: cannot read it as text ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            rec = json.loads(line)
        except ValueError:
            raise RoutevizError(f"{where}: not JSON (a truncated trace?)") from None
        if not isinstance(rec, dict) or not {"layer", "top_indices", "step"} <= set(rec):
            raise RoutevizError(f"{where}: not a RouterTracer record (needs step, layer, "
                                "top_indices)")
        if rec.get("block", "decoder") != "decoder":
            n_mtp += 1
            continue
        if not all(isinstance(rec[key], int) and not isinstance(rec[key], bool)
                   for key in ("layer", "step")):
            raise RoutevizError(f"{where}: step and layer must be integers")
        try:
            top = np.asarray(rec["top_indices"])
        except ValueError:
            top = np.zeros(0)  # ragged lists: refused just below
        if top.ndim != 2 or not np.issubdtype(top.dtype, np.integer) or (
                "num_tokens" in rec and top.shape[0] != rec["num_tokens"]):
            raise RoutevizError(f"{where}: top_indices is not [num_tokens][topk] integers")
        n = step_tokens.setdefault(rec["step"], top.shape[0])
        if n != top.shape[0]:
            raise RoutevizError(f"{where}: layer {rec['layer']} saw {top.shape[0]} tokens at "
                                f"step {rec['step']}, another layer {n}")
        per_layer.setdefault(int(rec["layer"]), []).append(top.astype(np.int64))
        if blob is not None and "logit_offset" in rec:
            piece = _bf16(blob, rec, where)
            if piece.ndim != 2 or piece.shape[0] != top.shape[0]:
                raise RoutevizError(f"{where}: logit_shape {list(piece.shape)} does not match "
                                    f"its {top.shape[0]} tokens")
            logits.setdefault(int(rec["layer"]), []).append(piece)
    if n_mtp:
        notes.append(f"{path.name}: {n_mtp} MTP record(s) left out")
    experts = {layer: np.concatenate(parts) for layer, parts in per_layer.items()}
    complete = logits and all(len(logits.get(l, [])) == len(per_layer[l]) for l in per_layer)
    return {"experts": experts,
            "logits": {l: np.concatenate(v) for l, v in logits.items()} if complete else None,
            "blocks": bool(lines) and '"block"' in lines[0]}


def _bf16(blob: bytes, rec: dict, where: str) -> np.ndarray:
    start, size, shape = rec["logit_offset"], rec.get("logit_bytes"), rec.get("logit_shape")
    if not (isinstance(start, int) and isinstance(size, int) and isinstance(shape, list)
            and all(isinstance(x, int) and x >= 0 for x in shape)) or start < 0 or \
            start + size > len(blob) or size != 2 * int(np.prod(shape)):
        raise RoutevizError(f"{where}: its logits lie outside the sidecar (truncated?)")
    half = np.frombuffer(blob[start:start + size], dtype="<u2").astype(np.uint32) << 16
    return half.view(np.float32).reshape(shape)


def _same(a: dict, b: dict) -> bool:
    return a["experts"].keys() == b["experts"].keys() and all(
        np.array_equal(a["experts"][k], b["experts"][k]) for k in a["experts"])


def _layer_base(layers: list, streams: list, layout) -> int:
    """0 where a layer 0 is traced or records carry `block` (decoder.layers.N); 1 for the
    older layer_number records, or where the deepest layer equals the model's layer count."""
    if 0 in layers:
        return 0
    if not all(s["blocks"] for s in streams):
        return 1
    if layout is not None and layout.n_layers is not None and max(layers) == layout.n_layers:
        return 1
    return 0


def _by_score(experts: np.ndarray, logits: np.ndarray):
    """Each token's experts ordered by logit, weighted by the softmax over all experts."""
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)  # [n, l, e]
    if experts.max(initial=0) >= logits.shape[-1]:
        raise RoutevizError(f"megatron: expert id {int(experts.max())} but the logits have "
                            f"{logits.shape[-1]} experts")
    chosen = np.take_along_axis(probs, experts, axis=-1)  # [n, l, k]
    order = np.argsort(-chosen, axis=-1, kind="stable")
    return (np.take_along_axis(experts, order, -1),
            np.take_along_axis(chosen, order, -1).astype(np.float32))


def _cut(experts, weights, token_lists, source: str) -> list:
    n = experts.shape[0]
    if token_lists is None:
        return [Sequence(experts, source, weights=weights)]
    total = sum(len(ids) for ids in token_lists)
    if total != n:
        raise RoutevizError(f"--tokens lengths sum to {total} tokens, the trace routed {n}: "
                            "one line per sequence, every token")
    out, start = [], 0
    for i, ids in enumerate(token_lists):
        stop = start + len(ids)
        out.append(Sequence(experts[start:stop], f"{source} sequence {i}",
                            weights=None if weights is None else weights[start:stop],
                            token_ids=list(ids)))
        start = stop
    return out


def sniff(path) -> bool:
    return path.is_dir() and any(path.glob("router_trace_rank*.jsonl")) or bool(
        _RANK.search(path.name))


IMPORTER = Importer("megatron", "Megatron-Core RouterTracer router_trace_rank{r}.jsonl "
                    "(+ logits_rank{r}.bin), a directory or files, every rank", read, sniff)
