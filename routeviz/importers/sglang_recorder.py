"""`sglang-recorder`: dumps of SGLang's expert-distribution recorder in `per_token` mode
(`--expert-distribution-recorder-mode per_token`, then `/start_expert_distribution_record`,
`/stop_…`, `/dump_…`).

A dump is `torch.save({"records": [...], "last_physical_to_logical_map": [L, physical]})`;
each record is one forward pass on one rank with `input_ids`, `positions`,
`extend_seq_lens` (None in decode), `forward_mode` and `topk_ids_of_layer` `[L, N, 8]`:
*physical* expert ids (EPLB replicas), -1 padded past the model's top-k and at layers that
did not route. Ids are mapped to logical experts through the dump's map (the last one, as
its name says). The recorder keeps no request ids: a segment starting at position 0 begins
an example; a later segment (chunked prefill, decode) continues the open example it
extends. Records that another rank already holds (tensor-parallel replicas) are read once.
Loaded with `torch.load(weights_only=True)`: tensors, lists and numbers only, never pickle.
"""

from __future__ import annotations

import numpy as np

from routeviz.errors import RoutevizError
from routeviz.importers.base import Capture, Importer, Sequence


def read(paths, options) -> Capture:
    examples, notes, seen, n_dupes = [], [], set(), 0
    for path in paths:
        dump = _load(path)
        mapping = np.asarray(dump["last_physical_to_logical_map"], np.int64)  # [L, physical]
        records = sorted(dump["records"], key=lambda r: (_int(r, "forward_pass_id", path),
                                                         _int(r, "rank", path)))
        for rec in records:
            key = (rec["forward_pass_id"], tuple(rec.get("input_ids") or ()))
            if key in seen:
                n_dupes += 1
                continue
            seen.add(key)
            _add_pass(examples, rec, mapping, path, notes)
    if n_dupes:
        notes.append(f"{n_dupes} record(s) repeated on another rank were read once")
    sequences = []
    for ex in examples:
        experts = np.stack(ex["rows"]) if ex["rows"] else np.zeros((0, 0, 0), np.int64)
        sequences.append(Sequence(experts, ex["source"],
                                  token_ids=ex["ids"] if ex["start"] == 0 else None,
                                  start=ex["start"]))
    return Capture(sequences, version="expert-distribution recorder per_token (torch.save)",
                   rank_order="unknown", files=[str(p) for p in paths], notes=notes)


def _load(path) -> dict:
    import torch

    try:  # weights_only: tensors, lists and numbers; never arbitrary pickle
        dump = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — a damaged zip or pickle raises many types
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise RoutevizError(f"{path.name}: not a readable torch.save dump ({first})") from None
    if not isinstance(dump, dict) or "records" not in dump or \
            "last_physical_to_logical_map" not in dump:
        raise RoutevizError(f"{path.name}: not a per_token recorder dump (needs records and "
                            "last_physical_to_logical_map)")
    if not isinstance(dump["records"], list):
        raise RoutevizError(f"{path.name}: records is not a list")
    return dump


def _int(rec, key, path) -> int:
    if not isinstance(rec, dict) or not isinstance(rec.get(key), int):
        raise RoutevizError(f"{path.name}: a record without an integer {key!r}")
    return rec[key]


def _add_pass(examples: list, rec: dict, mapping: np.ndarray, path, notes: list) -> None:
    where = f"{path.name} pass {rec['forward_pass_id']} rank {rec['rank']}"
    if "topk_ids_of_layer" not in rec:
        raise RoutevizError(f"{where}: no topk_ids_of_layer (record in per_token mode)")
    physical = np.asarray(rec["topk_ids_of_layer"], np.int64)  # [L, N, W]
    ids, positions = list(rec.get("input_ids") or []), list(rec.get("positions") or [])
    if physical.ndim != 3 or physical.shape[1] != len(ids) or len(positions) != len(ids):
        raise RoutevizError(f"{where}: topk_ids_of_layer {tuple(physical.shape)} does not "
                            f"match its {len(ids)} input ids")
    if physical.shape[0] != mapping.shape[0]:
        raise RoutevizError(f"{where}: {physical.shape[0]} layers, the map has "
                            f"{mapping.shape[0]}")
    if physical.max(initial=-1) >= mapping.shape[1] or physical.min(initial=0) < -1:
        raise RoutevizError(f"{where}: physical expert id outside the map's "
                            f"{mapping.shape[1]} slots")
    layers = np.arange(physical.shape[0])[:, None, None]
    logical = np.where(physical >= 0, mapping[layers, np.clip(physical, 0, None)], -1)
    rows = logical.transpose(1, 0, 2)  # [N, L, W]
    lengths = rec.get("extend_seq_lens")
    if not isinstance(lengths, (list, tuple)) or sum(lengths) != len(ids):
        lengths = [1] * len(ids)  # decode: one token per running sequence
    offset = 0
    for length in lengths:
        first = positions[offset] if length else 0
        target = None
        if first:
            open_ = [ex for ex in examples if ex["start"] + len(ex["rows"]) == first]
            target = open_[-1] if open_ else None
        if target is None:
            target = {"source": f"{path.name} pass {rec['forward_pass_id']}", "rows": [],
                      "ids": [], "start": int(first)}
            if first:
                notes.append(f"{target['source']}: a sequence starts at position {first} "
                             "(its earlier tokens are not in the dump)")
            examples.append(target)
        target["rows"].extend(rows[offset:offset + length])
        target["ids"].extend(ids[offset:offset + length])
        offset += length


def sniff(path) -> bool:
    return path.suffix == ".pt"


IMPORTER = Importer("sglang-recorder", "SGLang expert-distribution recorder per_token dumps "
                    "(torch.save; physical ids mapped to logical)", read, sniff)
