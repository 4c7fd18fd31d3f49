"""From a `Capture` to a stored run: layer axis onto the model's routers, rows onto tokens,
every check before the run is opened.

Dimension legend: r - rows (routed tokens), l - the source's layer axis, m - routing layers
kept, k - choices per token.

Everything that can be wrong with the input (a layer count that fits no layout, ids outside
the model's experts, a token file with another number of examples or lengths) is found
before the store is touched, so bad input creates no run; the rows are then written through
the same writer a trace uses (`routeviz.store.writer`), under the run's generation
(`routeviz.store.runwriter`), so an overwrite swaps in only when complete.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from routeviz.capture.rows import KIND_CODE, side_tables
from routeviz.errors import RoutevizError
from routeviz.importers.base import RANK_ORDERS, Capture
from routeviz.importers.layout import Layout
from routeviz.store import schema
from routeviz.store.writer import RouteColumns, Writer


@dataclass
class Prepared:
    """A capture checked against the model and the token file: ready to write."""

    examples: list  # per example: {"source", "ids" (or None), "n_tokens", "start", "rows"}
    columns: dict  # route columns (numpy), site given as an index into `sites`
    sites: list  # site names
    config: dict
    model_name: str
    notes: list = field(default_factory=list)


def read_token_file(path) -> list[list[int]]:
    """`--tokens FILE`: JSONL, one {"token_ids": [...]} per example."""
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutevizError(f"--tokens {str(path)!r}: cannot read it ({exc})") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise RoutevizError(f"--tokens {path.name} line {number}: not JSON") from None
        ids = record.get("token_ids") if isinstance(record, dict) else None
        if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise RoutevizError(f"--tokens {path.name} line {number}: expected "
                                '{"token_ids": [non-negative integers]}')
        out.append(ids)
    return out


def prepare(capture: Capture, layout: Layout | None, token_lists: list | None,
            fmt: str, rank_order: str | None = None) -> Prepared:
    """Check `capture` against the model layout and the token file; build the route rows."""
    sequences = [s for s in capture.sequences]
    if not sequences:
        raise RoutevizError(f"{fmt}: no routing found in {', '.join(capture.files) or 'the input'}")
    if token_lists is not None and len(token_lists) != len(sequences):
        raise RoutevizError(f"--tokens has {len(token_lists)} example(s), the {fmt} input has "
                            f"{len(sequences)}: one line per example, in order")
    n_axis = {s.experts.shape[1] for s in sequences if s.experts.shape[0]}
    if len(n_axis) > 1:
        raise RoutevizError(f"{fmt}: sequences have different layer counts {sorted(n_axis)}")
    n_axis = n_axis.pop() if n_axis else 0
    if capture.layers is not None:
        axis = _named_layers(capture.layers, layout)
    else:
        layout = layout or Layout.bare(n_axis)
        axis = layout.axis_layers(n_axis, f"{fmt} input")
    layout = layout or Layout.bare(max([a for a in axis if a is not None], default=-1) + 1)
    keep = [i for i, layer in enumerate(axis) if layer is not None]
    sites = [layout.sites.get(axis[i], f"layers.{axis[i]}") for i in keep]
    examples, cols = [], {n: [] for n in RouteColumns.COLUMNS}
    for index, seq in enumerate(sequences):
        where = f"example {index} ({seq.source})"
        experts = seq.experts[:, keep, :] if seq.experts.shape[0] else seq.experts  # [r, m, k]
        _check_ids(experts, layout.n_experts, where)
        info = _align(seq, token_lists[index] if token_lists is not None else None, where)
        _check_vocab(info["ids"], layout, where)
        examples.append(info)
        if not experts.size:
            continue
        r, m, k = experts.shape
        chosen = experts >= 0  # [r, m, k]
        weights = (np.full(experts.shape, np.nan, np.float32) if seq.weights is None
                   else np.asarray(seq.weights, np.float32)[:, keep, :])
        grid = np.indices((r, m, k))  # [3, r, m, k]: row, kept layer, rank
        cols["example"].append(np.full(int(chosen.sum()), index, np.int64))
        cols["token"].append((grid[0][chosen] + info["start"]).astype(np.int32))
        cols["layer"].append(np.asarray([axis[i] for i in keep], np.int16)[grid[1][chosen]])
        cols["site"].append(grid[1][chosen].astype(np.int32))
        cols["kind"].append(np.full(int(chosen.sum()), KIND_CODE["expert"], np.int8))
        cols["choice"].append(experts[chosen].astype(np.int32))
        cols["rank"].append(grid[2][chosen].astype(np.int8))
        cols["weight"].append(weights[chosen])
    columns = {n: np.concatenate(v) if v else np.zeros(0) for n, v in cols.items()}
    order = rank_order or capture.rank_order
    if order not in RANK_ORDERS:
        raise RoutevizError(f"unknown rank order {order!r}; available: {', '.join(RANK_ORDERS)}")
    weights_given = any(s.weights is not None for s in sequences)
    config = {
        "source": "import",
        "import": {"format": fmt, "version": capture.version, "files": capture.files,
                   "notes": capture.notes, **capture.facts},
        "rank_order": order,
        "weights": "given" if weights_given else "none",
        "routed_tokens": ("all but the last (the last token is sampled, never fed back)"
                          if any(s.trailing for s in sequences) else "all"),
        "n_experts": layout.n_experts, "top_k": layout.top_k,
        "n_layers": layout.n_layers, **layout.facts,
        "sites": {name: {k: v for k, v in (("n_experts", layout.n_experts),
                                            ("top_k", layout.top_k)) if v}
                  for name in sites},
    }
    model_name = (Path(layout.facts["checkpoint"]).name if layout.facts.get("checkpoint")
                  else f"{fmt} import")
    return Prepared(examples, columns, sites, config, model_name, list(capture.notes))


def _named_layers(layers, layout: Layout | None) -> list:
    """A source that names each entry's model layer (Megatron): kept where the model routes
    there; a named layer the model does not route at is refused."""
    if layout is None or layout.n_layers is None:
        return list(layers)
    routing = set(layout.moe_layers)
    wrong = [layer for layer in layers if layer not in routing]
    if wrong:
        raise RoutevizError(f"the input routes at layer(s) {wrong[:8]}, where the model has no "
                            f"router (routing layers: {layout.moe_layers[:16]})")
    return list(layers)


def _check_ids(experts: np.ndarray, n_experts: int | None, where: str) -> None:
    if not experts.size:
        return
    low, high = int(experts.min()), int(experts.max())
    if low < -1:
        raise RoutevizError(f"{where}: expert id {low} (only -1 may mark an empty slot)")
    if n_experts is not None and high >= n_experts:
        at = np.argwhere(experts >= n_experts)[0]
        raise RoutevizError(f"{where}: expert id {high} at row {int(at[0])} is not below the "
                            f"model's {n_experts} experts")


def _check_vocab(ids, layout: Layout, where: str) -> None:
    size = len(layout.tokenizer) if layout.tokenizer is not None else None
    if ids and size is not None and max(ids) >= size:
        raise RoutevizError(f"{where}: token id {max(ids)} is not in the tokenizer's "
                            f"{size} ids (another model's tokens?)")


def _align(seq, file_ids, where: str) -> dict:
    """Where the rows sit among the example's tokens, and its ids (the source's own first)."""
    rows = int(seq.experts.shape[0])
    ids = seq.token_ids
    if ids is not None and file_ids is not None and list(ids) != list(file_ids):
        raise RoutevizError(f"{where}: the --tokens ids differ from the ids the input carries "
                            f"({len(file_ids)} vs {len(ids)} ids)")
    ids = list(ids) if ids is not None else file_ids
    if ids is not None and not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                   for i in ids):
        raise RoutevizError(f"{where}: token ids must be non-negative integers")
    start = seq.start
    if ids is None:
        start = start or 0
        return {"source": seq.source, "ids": None, "n_tokens": start + rows + seq.trailing,
                "start": start, "rows": rows}
    expected = (start or 0) + rows + seq.trailing
    if start is None:
        start = len(ids) - seq.trailing - rows
    if start < 0 or start + rows + seq.trailing != len(ids):
        last = " + the sampled last token" if seq.trailing else ""
        raise RoutevizError(f"{where}: {len(ids)} token ids, but the routing covers {expected} "
                            f"tokens ({rows} routed rows{last}"
                            f"{f' after a prompt offset of {seq.start}' if seq.start else ''})")
    return {"source": seq.source, "ids": ids, "n_tokens": len(ids), "start": start,
            "rows": rows}


def write(prepared: Prepared, store, run: str, layout: Layout | None,
          overwrite: bool = False) -> int:
    """Write the run; nothing stays behind if writing fails. Returns the route rows written."""
    from routeviz.store import delete_run_files, init_store
    from routeviz.store.runwriter import RunWriter

    schema.check_run_name(run)
    init_store(store)
    runs = RunWriter(store, run, overwrite=overwrite)
    runs.open()
    created = dt.datetime.now(dt.timezone.utc)
    writer = NullWeightWriter(runs.root, run)
    try:
        codes = np.asarray([writer.site_code(s) for s in prepared.sites], np.int32)
        cols = dict(prepared.columns)
        cols["site"] = codes[cols["site"].astype(np.int64)] if len(codes) else cols["site"]
        routes = RouteColumns(**cols) if len(cols["example"]) else None
        tables = _side_tables(prepared.examples, layout)
        writer.put(lambda: (routes, tables))
        writer.close()
        runs.write_row(model=prepared.model_name, created=created, finished=True,
                       n_examples=len(prepared.examples), config=prepared.config)
    except BaseException:
        staged = runs.staged
        runs.finish(keep=False)
        if not staged:
            delete_run_files(store, run)
        raise
    runs.finish(keep=True)
    return writer.rows_written


class NullWeightWriter(Writer):
    """The trace's writer, with a weight the source did not give stored as NULL (a trace
    records NaN there): SQL then skips it (avg, sum, `weight > 0`) where NaN would poison it."""

    def _routes_table(self, chunks):
        import pyarrow.compute as pc

        table = super()._routes_table(chunks)
        index = table.schema.get_field_index("weight")
        weight = table.column(index)
        return table.set_column(index, "weight", pc.if_else(
            pc.is_nan(weight), pa.scalar(None, weight.type), weight))


def _side_tables(examples: list, layout: Layout | None) -> dict:
    """examples and tokens rows. The tokens table runs from position 0 to the last routed
    token: a vLLM or SGLang sequence's last, sampled token has no routing, and analyses that
    count tokens (dropped tokens in load) would count it as dropped; a prompt prefix the
    request skipped stays (unrouted), so positions line up on Inspect. `examples.text` keeps
    the whole sequence, decoded. Ids are decoded with the checkpoint's tokenizer where there
    is one (as `routeviz trace` decodes them), else each id is its text."""
    from routeviz.capture.offsets import token_offsets

    routed, meta, rows = [], [], {n: [] for n in ("example", "token", "text", "char_start",
                                                    "char_end")}
    for index, info in enumerate(examples):
        ids, start, n = info["ids"], info["start"], info["rows"]
        texts = layout.decode(ids) if layout is not None and ids is not None else None
        if texts is None:
            texts = [str(i) for i in ids] if ids is not None else [
                f"#{i}" for i in range(info["n_tokens"])]
        full = (layout.tokenizer.decode(ids) if ids is not None and layout is not None
                and layout.tokenizer is not None else None)
        spans = token_offsets(full, texts) if full is not None else [None] * len(texts)
        for position in range(start + n):
            rows["example"].append(index)
            rows["token"].append(position)
            rows["text"].append(texts[position])
            rows["char_start"].append(None if spans[position] is None else spans[position][0])
            rows["char_end"].append(None if spans[position] is None else spans[position][1])
        routed.append(texts[:start + n])
        meta.append({"modality": "text", "source": info["source"], "text": full})
    batch = SimpleNamespace(examples=list(range(len(examples))), tokens=routed, meta=meta,
                            tags=None, predictions=None)
    tables = side_tables(batch, None)
    tables["tokens"] = pa.table(rows, schema=schema.TOKENS)
    return tables
