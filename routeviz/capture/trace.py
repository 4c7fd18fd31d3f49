"""`routeviz.trace`: record routing decisions with forward hooks that only observe.

    with routeviz.trace(model, store="routes/", run="mixtral-code") as tracer:
        for ids, token_strings, tags in batches:
            with tracer.batch(examples=ids, tokens=token_strings, tags=tags):
                model(input_ids)

Hooks keep device tensors; at batch end everything is packed into one float32 buffer per
device and copied to the host once (routeviz.transfer); a background thread expands it into
rows and writes Parquet (routeviz.writer) where the run writer says (routeviz.runwriter:
the run's files, or a generation swapped in at the end for an overwrite). Hooks are
registered by routeviz.capture.hooks.hooks and all removed in `finally`, so no hook outlives the
block, even after an exception; batches completed before the exception are on disk.
"""

from __future__ import annotations

import datetime as dt
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from routeviz.capture.distributed import detect_ranks, local_index_after, rank_example_ids
from routeviz.capture.exits import resolve_exits
from routeviz.capture.hooks import SiteHooks
from routeviz.capture.rows import expand_batch
from routeviz.capture.sites import Site, find_sites, layer_of, site_config, unhandled_moe_modules  # noqa: F401
from routeviz.capture.transfer import detach_event, keep_site_input, pack_events, pack_hidden
from routeviz.errors import RoutevizError, RunExists, choose
from routeviz.store import schema
from routeviz.store.runwriter import RunWriter
from routeviz.store.writer import Writer


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
    hidden: dict = field(default_factory=dict)  # event index -> its site's input (float16)

    def predict(self, predictions) -> None:
        """Attach the model's output per example (a string each) to the examples table."""
        self.predictions = [None if p is None else str(p) for p in predictions]


@dataclass
class TraceOptions:
    """The keywords of `routeviz.trace` (see its docstring)."""

    include: Any = None  # module names, globs, classes or instances to trace (None: all)
    overwrite: bool = False  # replace an existing run (swapped in when the trace ends)
    append: bool = False  # add to an existing run
    logits: bool = False  # also record router logits
    hidden_states: bool = False  # also record each site's input (float16, `embeddings`)
    model_name: str | None = None  # default: the model's class name
    config: dict | None = None  # JSON-able, saved with the run (adapters add their facts)
    weight_dtype: str = "float32"  # or "float16" (DuckDB reads it, Spark does not)
    flush_rows: int = 1 << 20  # route rows buffered before a part file is written
    flush_seconds: float = 2.0  # ... or seconds
    write_run: bool = True  # write the runs row (False: the caller writes it)
    distributed: bool | None = None  # None: one run for all ranks under torchrun
    registry: Any = None  # a routeviz.registry.Registry (None: the process-wide one)
    hooks: Any = None  # a routeviz.hooks.SiteHooks kept on the model across traces

    def __post_init__(self):
        if self.overwrite and self.append:
            raise RoutevizError("choose overwrite or append, not both")
        choose("weight_dtype", self.weight_dtype, ["float32", "float16"])


class Tracer:
    def __init__(self, model, store, run, options: TraceOptions | None = None):
        self.options = options = options or TraceOptions()
        self.model = model
        self.store_path = Path(store)
        self.run = schema.check_run_name(run)
        self.model_name = options.model_name or type(model).__name__
        self.config = dict(options.config or {})
        self.group = None  # routeviz.distributed: Ranks under torchrun, else SINGLE
        self.runs = RunWriter(self.store_path, self.run, overwrite=options.overwrite,
                              append=options.append)
        self.sites: list[Site] = []
        self.writer: Writer | None = None
        self.examples_seen: set = set()
        self.n_batches = 0
        self._site_hooks: SiteHooks | None = None
        self._batch: Batch | None = None
        self._implicit = False
        self._next_local = 0  # this rank's next default example index
        self._all_examples = self._all_batches = None
        self._created = None

    # -- lifetime ---------------------------------------------------------------------
    def __enter__(self):
        options = self.options
        kept = options.hooks
        if kept is not None and kept.model is not self.model:
            raise RoutevizError("trace(hooks=...) takes hooks kept on the model it traces")
        self.sites = kept.sites if kept is not None else find_sites(
            self.model, options.include, registry=options.registry)
        self.group = detect_ranks(options.distributed)
        opened, error = None, None
        if self.group.leader:  # rank 0 decides for every rank
            try:
                opened = self.runs.open(ids_after_largest=self.group.size > 1)
            except RoutevizError as err:
                opened, error = {"error": str(err)}, err
        opened = self.group.share(opened)
        if error is not None:
            raise error
        if "error" in opened:
            raise RunExists(opened["error"])
        self.runs.join(opened)
        self._created = dt.datetime.now(dt.timezone.utc)
        self._base_examples, self._first_id = opened["base"], opened["first_id"]
        try:
            missed = [] if kept is not None else unhandled_moe_modules(self.model, self.sites)
            if missed:
                shown = ", ".join(missed[:10]) + (
                    f" and {len(missed) - 10} more" if len(missed) > 10 else "")
                warnings.warn(f"routeviz: no adapter handled these MoE-looking modules: "
                              f"{shown}; their routing is not recorded (add one with "
                              "routeviz.register)")
            self.config.update(site_config(self.sites, self.config))
            # the unfinished runs row goes out with the first part file written before the
            # end (none for a trace of one batch: the finished row is the first)
            self.writer = Writer(self.runs.root, self.run, flush_rows=options.flush_rows,
                                 before_first_file=lambda: self._write_run_row(finished=False),
                                 flush_seconds=options.flush_seconds,
                                 weight_dtype=options.weight_dtype, place=self.runs.place)
            self._site_hooks = kept or SiteHooks(self.model, self.sites)
            self._site_hooks.attach(self, this_thread_only=kept is not None)
        except BaseException:
            self._release_hooks()
            if self.writer is not None:
                self.writer.close()
            if self.group.leader:
                self.runs.finish(keep=False)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self._batch = None  # an exception inside a forward: that batch is lost
        self._release_hooks()
        try:
            if self.writer is not None:
                self.writer.close()
        finally:  # every rank gets here, even after an error
            self._all_examples, self._all_batches = self.group.total(
                len(self.examples_seen), self.n_batches)
        try:
            self._write_run_row(finished=True)
        finally:
            if self.group.leader:
                self.runs.finish(keep=bool(self._all_batches))
            self.group.barrier()  # nobody leaves before the run is complete
        silent = [s.name for s in self.sites if s.fired == 0]
        if self.n_batches and silent and exc_type is None:
            warnings.warn(
                f"routeviz: {len(silent)} recognised routing module(s) never fired: "
                + ", ".join(silent[:10])
            )
        return False

    @property
    def next_example(self) -> int:
        """The example id the next batch without `examples=` gets (on this rank)."""
        return rank_example_ids(self._first_id, self.group, self._next_local, 1)[0]

    def _release_hooks(self):
        """Detach from the hooks; remove them unless they were given (kept across traces)."""
        if self._site_hooks is None:
            return
        self._site_hooks.detach()
        if self._site_hooks is not self.options.hooks:
            self._site_hooks.close()
        self._site_hooks = None

    # -- hooks (on the forward path: keep them cheap, never sync the device) ----------
    def on_site(self, site: Site, module, inputs, output):
        """A routing site's hook (called by SiteHooks)."""
        batch = self._batch
        if batch is None:
            return
        result = site.adapter(module, inputs, output)
        if result is None:
            return
        first, logits = len(batch.events), self.options.logits
        for event in result if isinstance(result, (list, tuple)) and not isinstance(
                result, schema.RouteEvent) else [result]:
            batch.events.append((site, detach_event(event, logits)))
        site.fired += 1
        if self.options.hidden_states:
            keep_site_input(batch.hidden, range(first, len(batch.events)), inputs)

    def on_root_pre(self, args, kwargs):
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

    def on_root_post(self):
        if self._implicit:
            batch, self._batch, self._implicit = self._batch, None, False
            self._finish(batch)

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
        if batch.examples is None:
            batch.examples = rank_example_ids(self._first_id, self.group, self._next_local,
                                              batch.batch_size)
            self._next_local += batch.batch_size
        elif batch.examples:  # default ids continue after the largest given one
            self._next_local = max(self._next_local, local_index_after(
                self._first_id, self.group, max(batch.examples)))
        self.examples_seen.update(batch.examples)
        self.n_batches += 1
        batch.events = resolve_exits(batch.events)
        logits = self.options.logits
        site_codes = [self.writer.site_code(_site_name(s, e)) for s, e in batch.events]
        hidden = pack_hidden(batch.hidden) if batch.hidden else None
        if _on_host(batch):  # nothing to copy: the writer thread takes the arrays
            if batch.attention_mask is not None:  # the caller's: it may be reused
                batch.attention_mask = batch.attention_mask.clone()
            self.writer.put(lambda: expand_batch(
                batch, pack_events(batch.events, batch.attention_mask, logits), site_codes,
                logits, hidden))
            return
        packed = pack_events(batch.events, batch.attention_mask, logits)  # device -> host now
        self.writer.put(lambda: expand_batch(batch, packed, site_codes, logits, hidden))

    # -- the runs table ---------------------------------------------------------------
    def _write_run_row(self, finished: bool):
        if not self.options.write_run or not self.group.leader:
            return
        seen = len(self.examples_seen) if self._all_examples is None else self._all_examples
        self.runs.write_row(model=self.model_name, created=self._created, finished=finished,
                            n_examples=self._base_examples + seen, config=self.config)


def _on_host(batch: Batch) -> bool:
    """Every tensor of the batch's events (and its mask) is already in host memory."""
    tensors = [t for _, e in batch.events for t in (e.choice, e.weight, e.valid, e.token_index,
                                                   e.logits) if isinstance(t, torch.Tensor)]
    if isinstance(batch.attention_mask, torch.Tensor):
        tensors.append(batch.attention_mask)
    return all(t.device.type == "cpu" for t in tensors)


def _site_name(site: Site, event: schema.RouteEvent) -> str:
    return f"{site.name}.{event.site}" if event.site else site.name


def trace(model: nn.Module, store, run: str, **options) -> Tracer:
    """Record where every token goes in `model` into `store` under `run`.

    Options: include (module names, globs, classes or instances to restrict tracing to),
    overwrite / append (for an existing run), logits (also record router logits),
    hidden_states (also record, per routing site and token, the site's input: the hidden
    state its router received, float16, in the `embeddings` table),
    model_name, config (a JSON-able dict saved with the run), weight_dtype
    ("float32", lossless, ~3.5 bytes per route row; or "float16", ~1.6 bytes, for very
    large traces: DuckDB reads it, Spark does not), distributed (None: under torchrun
    with an initialised process group, all ranks write one run; False: this process
    alone; see README "Scale"), registry (a `routeviz.registry.Registry` to look adapters
    up in, e.g. a fresh one in a test; default: the process-wide one).
    """
    return Tracer(model, store, run, TraceOptions(**options))
