"""`routeviz.trace`: record routing decisions with forward hooks that only observe.

    with routeviz.trace(model, store="routes/", run="mixtral-code") as tracer:
        for ids, token_strings, tags in batches:
            with tracer.batch(examples=ids, tokens=token_strings, tags=tags):
                model(input_ids)

Hooks keep device tensors; at batch end everything is packed into one float32 buffer per
device and copied to the host once; a background thread expands it into rows and writes
Parquet. Every hook handle is removed in `finally`, so no hook outlives the block, even
after an exception; batches completed before the exception are on disk.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from routeviz import schema
from routeviz.distributed import detect_ranks, next_free_example, rank_example_ids
from routeviz.errors import RoutevizError, RunExists, choose
from routeviz.exits import resolve_exits
from routeviz.rows import expand_batch
from routeviz.sites import (Site, find_sites, layer_of, site_config,  # noqa: F401
                            unhandled_moe_modules)
from routeviz.store import (discard_partition, init_store, promote_partition, replace_file,
                            run_exists, staging_partition)
from routeviz.writer import Writer


@dataclass
class Batch:
    """The rows of one forward pass: example ids, token strings, tags and per-example meta."""

    examples: list | None = None
    tokens: list | None = None
    tags: list | None = None
    meta: list | None = None
    attention_mask: torch.Tensor | None = None
    predictions: list | None = None
    batch_size: int | None = None
    events: list = field(default_factory=list)

    def predict(self, predictions) -> None:
        """Attach the model's output per example (a string each) to the examples table."""
        self.predictions = [None if p is None else str(p) for p in predictions]


class Tracer:
    def __init__(self, model, store, run, *, include=None, overwrite=False, append=False,
                 logits=False, model_name=None, config=None, weight_dtype="float32",
                 flush_rows=1 << 20, flush_seconds=2.0, write_run=True, distributed=None,
                 registry=None):
        if overwrite and append:
            raise RoutevizError("choose overwrite or append, not both")
        choose("weight_dtype", weight_dtype, ["float32", "float16"])
        self.model = model
        self.store_path = Path(store)
        self.run = schema.check_run_name(run)
        self.include = include
        self.registry = registry  # a routeviz.registry.Registry; None: the default one
        self.overwrite = overwrite
        self.append = append
        self.logits = logits
        self.model_name = model_name or type(model).__name__
        self.config = dict(config or {})
        self.weight_dtype = weight_dtype
        self.write_run = write_run
        self.distributed = distributed
        self.ranks = None  # routeviz.distributed.Ranks under torchrun, else None
        self._local_examples = 0
        self._all_examples = self._all_batches = None
        self._writer_args = dict(flush_rows=flush_rows, flush_seconds=flush_seconds,
                                 weight_dtype=weight_dtype)
        self.sites: list[Site] = []
        self.handles: list = []
        self.writer: Writer | None = None
        self.examples_seen: set = set()
        self.n_batches = 0
        self._batch: Batch | None = None
        self._implicit = False
        self._next_example = 0
        self._created = None
        self._partition = None

    # -- lifetime ---------------------------------------------------------------------
    def __enter__(self):
        self.sites = find_sites(self.model, self.include, registry=self.registry)
        self.ranks = detect_ranks(self.distributed)
        decided = None
        if self.ranks is None or self.ranks.leader:
            try:
                decided = self._open_run()
            except RoutevizError as err:
                if self.ranks is None:
                    raise
                decided = {"error": str(err)}
        if self.ranks is not None:  # rank 0 decided for every rank
            decided = self.ranks.share(decided)
            if "error" in decided:
                raise RunExists(decided["error"])
        self._partition = decided["partition"]
        self._created = dt.datetime.now(dt.timezone.utc)
        self._base_examples = self._next_example = decided["base"]
        self._first_id = decided["first_id"]
        missed = unhandled_moe_modules(self.model, self.sites)
        if missed:
            shown = ", ".join(missed[:10]) + (f" and {len(missed) - 10} more" if len(missed) > 10 else "")
            warnings.warn(f"routeviz: no adapter handled these MoE-looking modules: {shown}; "
                          "their routing is not recorded (add one with routeviz.register)")
        self.config.update(site_config(self.sites, self.config))
        try:
            self._write_run_row(finished=False)
            self.writer = Writer(self.store_path, self.run, partition=self._partition,
                                 **self._writer_args)
            self._register_hooks()
        except BaseException:
            self._remove_hooks()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._batch is not None:  # an exception inside a forward: that batch is lost
                self._batch = None
        finally:
            self._remove_hooks()
            try:
                if self.writer is not None:
                    self.writer.close()
            finally:
                self._count_all_ranks()  # every rank gets here, even after an error
            try:
                self._write_run_row(finished=True)
            finally:
                if self._partition is not None and (self.ranks is None or self.ranks.leader):
                    if self._all_batches:
                        promote_partition(self.store_path, self.run, self._partition)
                    else:
                        discard_partition(self.store_path, self._partition)
                if self.ranks is not None:  # nobody leaves before the run is complete
                    self.ranks.barrier()
        silent = [s.name for s in self.sites if s.fired == 0]
        if self.n_batches and silent and exc_type is None:
            warnings.warn(
                f"routeviz: {len(silent)} recognised routing module(s) never fired: "
                + ", ".join(silent[:10])
            )
        return False

    def _register_hooks(self):
        self.handles.append(
            self.model.register_forward_pre_hook(self._root_pre_hook, with_kwargs=True))
        self.handles.append(self.model.register_forward_hook(self._root_post_hook))
        for site in self.sites:
            hook = self._make_hook(site)
            if site.hook == "pre":  # the adapter reads the arguments: hook(module, args, kwargs)
                self.handles.append(site.module.register_forward_pre_hook(hook, with_kwargs=True))
            else:
                self.handles.append(site.module.register_forward_hook(hook))

    def _remove_hooks(self):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    # -- hooks (on the forward path: keep them cheap, never sync the device) ----------
    def _make_hook(self, site: Site):
        def hook(module, inputs, output):
            batch = self._batch
            if batch is None:
                return None
            result = site.adapter(module, inputs, output)
            if result is None:
                return None
            for event in result if isinstance(result, (list, tuple)) and not isinstance(
                    result, schema.RouteEvent) else [result]:
                batch.events.append((site, _detach(event)))
            site.fired += 1
            return None
        return hook

    def _root_pre_hook(self, module, args, kwargs):
        if self._batch is None:
            self._batch = Batch()
            self._implicit = True
        batch = self._batch
        if batch.attention_mask is None:
            mask = kwargs.get("attention_mask")
            if isinstance(mask, torch.Tensor) and mask.dim() == 2:
                batch.attention_mask = mask.detach()
        if batch.batch_size is None:
            for value in list(args) + list(kwargs.values()):
                if isinstance(value, torch.Tensor) and value.dim() >= 1:
                    batch.batch_size = int(value.shape[0])
                    break
        return None

    def _root_post_hook(self, module, inputs, output):
        if self._implicit:
            batch, self._batch, self._implicit = self._batch, None, False
            self._finish(batch)
        return None

    # -- batches ----------------------------------------------------------------------
    @contextmanager
    def batch(self, examples=None, tokens=None, tags=None, meta=None, attention_mask=None):
        """Link the rows of the forward pass(es) inside this block to examples and tokens.

        examples: example ids (default: the next free ids); tokens: per example, the token
        strings; tags: per example, {name: value (example-level) or [value per token]};
        meta: per example, {source, label, modality, image, grid_h, grid_w, patch};
        attention_mask: [b, s], 0 at padding (read from the model call if not given).
        """
        if self._batch is not None:
            raise RoutevizError("tracer.batch() blocks cannot be nested")
        batch = Batch(examples=None if examples is None else [int(e) for e in examples],
                      tokens=tokens, tags=tags, meta=meta,
                      attention_mask=attention_mask)
        if batch.examples is not None:
            batch.batch_size = len(batch.examples)
        self._batch = batch
        try:
            yield batch
        except BaseException:
            self._batch = None
            raise
        self._batch = None
        self._finish(batch)

    def _finish(self, batch: Batch):
        if batch.batch_size is None:
            batch.batch_size = len(batch.tokens) if batch.tokens is not None else 1
        if batch.examples is None and self.ranks is not None:
            batch.examples = rank_example_ids(self._first_id, self.ranks,
                                              self._local_examples, batch.batch_size)
            self._local_examples += batch.batch_size
        if batch.examples is None:
            batch.examples = list(range(self._next_example, self._next_example + batch.batch_size))
        self._next_example = max(self._next_example, max(batch.examples, default=-1) + 1)
        self.examples_seen.update(batch.examples)
        self.n_batches += 1
        batch.events = resolve_exits(batch.events)
        packed = pack_events(batch.events, batch.attention_mask, self.logits)
        site_codes = [self.writer.site_code(_site_name(s, e)) for s, e in batch.events]
        self.writer.put(lambda: expand_batch(batch, packed, site_codes, self.logits))

    # -- the runs table ---------------------------------------------------------------
    def _open_run(self) -> dict:
        """Check the run against the store; return the partition to write and the first id."""
        init_store(self.store_path)
        exists = run_exists(self.store_path, self.run)
        if exists and not (self.overwrite or self.append):
            raise RunExists(f"run {self.run!r} already exists in {str(self.store_path)!r}; "
                            "pass overwrite=True (CLI: --overwrite) to replace it")
        # Overwriting writes beside the old run and swaps at the end, so a trace that fails
        # before its first batch completes leaves the old run as it was.
        partition = staging_partition(self.run) if (exists and self.overwrite) else None
        base = self._existing_examples() if (exists and self.append) else 0
        first_id = base  # ranks' default ids can leave gaps: continue after the largest
        if exists and self.append and self.ranks is not None:
            first_id = max(base, next_free_example(self.store_path, self.run))
        return {"partition": partition, "base": base, "first_id": first_id}

    def _count_all_ranks(self):
        """Examples and batches of the whole job (a collective under torchrun)."""
        self._all_examples, self._all_batches = len(self.examples_seen), self.n_batches
        if self.ranks is not None:
            self._all_examples, self._all_batches = self.ranks.total(
                self._all_examples, self._all_batches)

    def _existing_examples(self) -> int:
        path = self._run_file()
        if not path.exists():
            return 0
        try:
            return int(pq.read_table(path).column("n_examples")[0].as_py() or 0)
        except Exception:
            return 0

    def _run_file(self) -> Path:
        partition = getattr(self, "_partition", None) or f"run={self.run}"
        return self.store_path / "runs" / partition / "part-run.parquet"

    def _write_run_row(self, finished: bool):
        if not self.write_run or (self.ranks is not None and not self.ranks.leader):
            return
        from routeviz import __version__

        now = dt.datetime.now(dt.timezone.utc)
        table = pa.table(
            {
                "model": [self.model_name],
                "created": [self._created],
                "finished": [now if finished else None],
                "routeviz_version": [__version__],
                "n_examples": [self._base_examples + (len(self.examples_seen) if
                                                      self._all_examples is None
                                                      else self._all_examples)],
                "config": [json.dumps(self.config, default=str)],
            },
            schema=schema.RUNS,
        )
        replace_file(self._run_file(), "runs", table)


def _site_name(site: Site, event: schema.RouteEvent) -> str:
    return f"{site.name}.{event.site}" if event.site else site.name


def _detach(event: schema.RouteEvent) -> schema.RouteEvent:
    """Keep the event's tensors on their device, safe from later in-place edits."""
    def keep(t):
        return t.detach().clone() if isinstance(t, torch.Tensor) else t
    return event._replace(choice=keep(event.choice), weight=keep(event.weight),
                          valid=keep(event.valid), token_index=keep(event.token_index),
                          logits=keep(event.logits))


def pack_events(events, attention_mask, with_logits: bool):
    """Move every event's tensors to the host in one copy per device.

    Returns, per event, host numpy arrays (choice int32, weight float32, token_index or
    None), plus the host attention mask and, if asked, host logits.
    """
    import numpy as np

    pieces = {}  # device -> list of float32 flat tensors
    layout = []  # per event: (device, [(slot, offset, shape, is_int)])
    sizes = {}

    def add(device, tensor, is_int):
        flat = tensor.reshape(-1)
        flat = flat.to(torch.int32).view(torch.float32) if is_int else flat.to(torch.float32)
        offset = sizes.get(device, 0)
        pieces.setdefault(device, []).append(flat)
        sizes[device] = offset + flat.numel()
        return (offset, tuple(tensor.shape), is_int)

    for _, event in events:
        choice = torch.as_tensor(event.choice)
        if event.valid is not None:
            choice = torch.where(event.valid.to(torch.bool), choice.to(torch.int64),
                                 torch.full_like(choice, schema.SKIP, dtype=torch.int64))
        device = choice.device
        weight = event.weight
        if weight is None:
            weight = torch.full(choice.shape, float("nan"), device=device)
        entry = [add(device, choice, True), add(device, torch.as_tensor(weight).to(device), False)]
        if event.token_index is not None:
            entry.append(add(device, event.token_index.to(device), True))
        if with_logits and event.logits is not None:
            entry.append(add(device, event.logits.to(device), False))
        layout.append((device, entry, event))
    mask = None
    if attention_mask is not None:
        mask_entry = add(attention_mask.device, attention_mask, True)
    host = {d: torch.cat(p).cpu().numpy() for d, p in pieces.items()}

    def take(device, slot):
        offset, shape, is_int = slot
        n = int(np.prod(shape)) if shape else 1
        arr = host[device][offset:offset + n]
        return (arr.view(np.int32) if is_int else arr).reshape(shape)

    out = []
    for device, entry, event in layout:
        choice, weight = take(device, entry[0]), take(device, entry[1])
        token_index = take(device, entry[2]) if event.token_index is not None else None
        logits = None
        if with_logits and event.logits is not None:
            logits = take(device, entry[-1])
        out.append((choice, weight, token_index, logits))
    if attention_mask is not None:
        mask = take(attention_mask.device, mask_entry)
    return out, mask


def trace(model: nn.Module, store, run: str, **options) -> Tracer:
    """Record where every token goes in `model` into `store` under `run`.

    Options: include (module names, globs, classes or instances to restrict tracing to),
    overwrite / append (for an existing run), logits (also record router logits),
    model_name, config (a JSON-able dict saved with the run), weight_dtype
    ("float32", lossless, ~3.5 bytes per route row; or "float16", ~1.6 bytes, for very
    large traces: DuckDB reads it, Spark does not), distributed (None: under torchrun
    with an initialised process group, all ranks write one run; False: this process
    alone; see README "Scale"), registry (a `routeviz.registry.Registry` to look adapters
    up in, e.g. a fresh one in a test; default: the process-wide one).
    """
    return Tracer(model, store, run, **options)
