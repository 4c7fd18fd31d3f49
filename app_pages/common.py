"""Streamlit glue shared by the pages: the store handle, cached queries, model loading,
and the one way errors are shown. Everything a test wants to call lives in `routeviz`."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages import disk_cache
from routeviz.errors import RoutevizError

DEFAULT_STORE = "routeviz-store"
LOCAL_CHECKPOINT = "Local checkpoint directory…"
MAX_CHIPS = 2000  # token chips drawn at most
MAX_HEATMAP_TOKENS = 400  # heatmap columns before tokens are binned


def default_store_path() -> str:
    return os.environ.get("ROUTEVIZ_STORE") or str(Path.cwd() / DEFAULT_STORE)


@dataclass
class StoreHandle:
    """One open Store per path, shared by sessions; views rebuilt when files change.
    signature: the store's generation (every run directory and its mtime); by_run: the
    same split per run, so a cached query of one run outlives writes to other runs."""

    store: object
    signature: tuple = ()
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_run: dict = field(default_factory=dict)
    # digests of `signature` and of the run names: what cache keys carry instead of the
    # tuples, which st.cache_data hashed again on every call (a 30-run store: ~7 ms a call,
    # a few calls a rerun; issue 25)
    digest: str = ""
    names_digest: str = ""

    def set_signature(self, signature: tuple) -> None:
        by_run: dict = {}
        for directory, mtime in signature:
            name = Path(directory).name[len("run="):]
            by_run[name] = by_run.get(name, ()) + ((Path(directory).parent.name, mtime),)
        self.signature, self.by_run = signature, by_run
        self.digest, self.names_digest = _digest(signature), _digest(tuple(by_run))

    def generation_of(self, args: tuple, kwargs: tuple) -> tuple:
        """The cache key's store part for a call with these arguments: the generations of
        the runs it names (plus the list of run names, for calls that look at others, e.g.
        the run to compare with), or the whole store's when it names no run (series, the
        run listing)."""
        values = list(args) + [v for _, v in kwargs]
        named = sorted({v for value in values
                        for v in (value if isinstance(value, (tuple, list)) else (value,))
                        if isinstance(v, str) and v in self.by_run})
        if not named:
            return self.digest
        return (self.names_digest, tuple((run, self.by_run[run]) for run in named))


def _digest(value: tuple) -> str:
    """A short stable name of a tuple of strings and integers (its repr hashed)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()


def store_signature(path: str) -> tuple:
    """Changes whenever a run directory of any table gains or loses a file."""
    sig = []
    for directory in sorted(Path(path).glob("*/run=*")):
        try:
            sig.append((str(directory), directory.stat().st_mtime_ns))
        except FileNotFoundError:
            pass
    return tuple(sig)


_CHECKED: dict = {}  # session id -> (path, the rerun's cursors dict) whose store was checked


def _checked_this_rerun(path: str) -> bool:
    """True after the first call in one run of the script for `path`: the store's files
    are listed (and its views refreshed, if anything was written) once per rerun. The
    rerun is told apart by Streamlit's per-run cursors dict, held here so its id is not
    reused."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return False
    seen = _CHECKED.get(ctx.session_id)
    if seen is not None and seen[0] == path and seen[1] is ctx.cursors:
        return True
    if len(_CHECKED) > 1024:  # sessions come and go: forget them all now and then
        _CHECKED.clear()
    _CHECKED[ctx.session_id] = (path, ctx.cursors)
    return False


def store_written() -> None:
    """The store was written in this run of the script (a button's callback records before
    the script runs, in the same run): the next get_handle() lists its files again."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None:
        _CHECKED.pop(ctx.session_id, None)


@st.cache_resource(show_spinner=False)
def _handle(path: str) -> StoreHandle:
    from routeviz.store import init_store, open_store

    init_store(path)
    return StoreHandle(store=open_store(path))


def store_path() -> str:
    return st.session_state.get("store_path") or default_store_path()


def get_handle() -> StoreHandle | None:
    """The store in the sidebar, created on first use; None (with an error shown) if the
    path cannot be a store."""
    path = str(Path(store_path()).expanduser().resolve())
    try:
        handle = _handle(path)
    except RoutevizError as exc:
        st.error(str(exc))
        return None
    if not _checked_this_rerun(path):
        sig = store_signature(path)
        if sig != handle.signature:
            with handle.lock:
                handle.store.refresh()
                handle.set_signature(sig)
    if handle.store.damaged:
        names = ", ".join("/".join(Path(p).parts[-3:]) for p in handle.store.damaged)
        st.warning(f"Skipped damaged part file(s), the rest of the store reads: {names}")
    return handle


_MEMO: dict = {}  # (store path, generation, key) -> a built object, oldest first
_MEMO_LOCK = threading.Lock()
MEMO_ENTRIES = 64


def memo(handle: StoreHandle, key: tuple, build):
    """build(), once per `key` and generation of the runs `key` names, in this process: the
    hover cards and figures a rerun would otherwise build again for the same example (a
    widget's rerun, a page switch; issue 25). Kept for the last MEMO_ENTRIES keys and shared,
    not copied as st.cache_data copies: callers must not change what it returns."""
    named = sorted({v for v in key if isinstance(v, str) and v in handle.by_run})
    generation = tuple((run, handle.by_run[run]) for run in named) or handle.signature
    full = (str(handle.store.path), generation, key)
    with _MEMO_LOCK:
        if full in _MEMO:
            _MEMO[full] = _MEMO.pop(full)  # most recently used last
            return _MEMO[full]
    value = build()
    with _MEMO_LOCK:
        _MEMO[full] = value
        while len(_MEMO) > MEMO_ENTRIES:
            _MEMO.pop(next(iter(_MEMO)))
    return value


def query(handle: StoreHandle, fn, *args, **kwargs):
    """Call fn(store, *args) under the handle's lock (one DuckDB connection, many sessions)."""
    with handle.lock:
        return fn(handle.store, *args, **kwargs)


def cached(fn):
    """st.cache_data keyed by the store's path and the generation of the runs the call
    names (StoreHandle.generation_of), so new runs show at once and a write to one run
    leaves the cached results of the others in place; slow frames also kept on disk for
    the next app process (disk_cache)."""

    @st.cache_data(show_spinner=False, max_entries=256)
    def _run(path: str, signature: tuple, name: str, args: tuple, kwargs: tuple):
        key = disk_cache.key_of(path, signature, name, args, kwargs)
        kept = disk_cache.load(key)  # computed by an earlier app process
        if kept is not None:
            return kept
        start = time.perf_counter()
        result = query(_handle(path), fn, *args, **dict(kwargs))
        disk_cache.save(key, result, time.perf_counter() - start)
        return result

    def wrapper(handle: StoreHandle, *args, **kwargs):
        path = str(handle.store.path.resolve())
        kwargs = tuple(sorted(kwargs.items()))
        return _run(path, handle.generation_of(args, kwargs), fn.__qualname__, args, kwargs)

    wrapper.__name__ = fn.__name__
    return wrapper


def show_error(exc: Exception) -> None:
    """A user-facing error as one line in the page; anything else with its type."""
    if isinstance(exc, RoutevizError):
        st.error(str(exc))
    else:
        lines = str(exc).strip().splitlines()
        st.error(f"{type(exc).__name__}: {lines[0] if lines else ''}")


@st.fragment
def panel_fragment(panel, *args) -> None:
    """panel(*args) as a fragment: a widget inside it (What if's controls, Why's token and
    expert) reruns the panel alone, not the page around it; a failure stays in it."""
    try:
        panel(*args)
    except Exception as exc:  # noqa: BLE001 — a panel's failure stays in it
        show_error(exc)


# -- runs ---------------------------------------------------------------------------
def _runs(store) -> pd.DataFrame:
    return store.runs()


runs_frame = cached(_runs)


def _run_order(store) -> list[str]:
    """The runs in store.runs()'s order (by created), without its count of every run's
    routes: the sidebar asks after every write (a 100-run store: ~10 vs 54-81 CPU-ms)."""
    return store.engine.query("SELECT run FROM runs ORDER BY created")["run"].astype(str).tolist()


run_order = cached(_run_order)


def run_names(handle: StoreHandle) -> list[str]:
    return run_order(handle)


def current_run(handle: StoreHandle) -> str | None:
    """The run chosen in the sidebar, if it exists in the store."""
    run = st.session_state.get("run")
    names = run_names(handle)
    return run if run in names else (names[-1] if names else None)


def select_run(run: str) -> None:
    """Make `run` the sidebar's run on the next script run (widgets can't change mid-run)."""
    st.session_state["pending_run"] = run


def new_run_name(prefix: str) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:4]}"


def page_run(title: str) -> tuple[StoreHandle, str]:
    """A run page's head: its title, then the store and the current run; the page stops
    here (after saying how to make a run) when there is none."""
    st.title(title)
    handle = get_handle()
    run = need_run(handle)
    if run is None:
        st.stop()
    return handle, run


def need_run(handle: StoreHandle | None) -> str | None:
    """The current run, or None after telling the user how to make one."""
    if handle is None:
        return None
    run = current_run(handle)
    if run is None:
        st.info("This store has no runs yet: record one on **Inspect** or trace a dataset on "
                "**Runs**.")
    return run


def run_config(handle: StoreHandle, run: str) -> dict:
    return cached_config(handle, run)


def _config(store, run):
    return store.config(run)


cached_config = cached(_config)


def run_source(config: dict) -> str:
    """Where a run's routing came from, in a few words: 'traced', or the engine's format and
    what the importer sniffed, with what the run lacks (weights, ranks by score)."""
    info = config.get("import") if isinstance(config, dict) else None
    if not isinstance(info, dict):
        return "traced"
    lacks = [what for what, missing in (("no gate weights", config.get("weights") == "none"),
                                        (f"rank order {config.get('rank_order')}",
                                         config.get("rank_order") != "score")) if missing]
    return (f"imported from {info.get('format')} ({info.get('version')})"
            + (f"; {', '.join(lacks)}" if lacks else ""))


# -- models -------------------------------------------------------------------------
def sample_model_names() -> list[str]:
    """The installed models the pickers offer (`routeviz.models` entry points)."""
    from routeviz.plugins import model_specs

    return list(model_specs())


LOADED_MODELS: set = set()  # names load_runner has loaded in this process (a page may ask)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_runner(name_or_dir: str):
    """The model, kept warm: its routing hooks stay registered between inputs, so
    `routeviz.runs.record.record(runner, ...)` costs the forward and the write (issue 18)."""
    import torch

    from routeviz.runs.models import load_model
    from routeviz.runs.record import WarmRunner

    # one input at a time: half the cores at most (1 of 2 here). A second intra-op thread
    # on a busy 2-core machine made text-moe's 128-token forward 0.2 s -> 1-6 s (spinning
    # and waiting for a core), and the page's own work needs the other core.
    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) // 2)))
    runner = WarmRunner(load_model(name_or_dir))
    LOADED_MODELS.add(str(name_or_dir))
    return runner


def n_experts_for(config: dict, site: str | None = None, fallback: int = 8) -> int:
    n = config.get("n_experts")
    if isinstance(n, dict):
        if site in n:
            return int(n[site])
        return int(max(n.values())) if n else fallback
    return int(n) if n else fallback


# -- metrics ------------------------------------------------------------------------
def _metric(store, name: str, run: str, **kwargs):
    from routeviz import metrics

    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    return getattr(metrics, name)(store, run, **kwargs)


_cached_metric = cached(_metric)


def metric(handle: StoreHandle, name: str, run: str, **kwargs):
    """`routeviz.metrics.<name>(store, run, **kwargs)`, cached; lists passed as tuples."""
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    return _cached_metric(handle, name, run, **kwargs)


def _run_facts(store, run: str) -> dict:
    """store.facts(run) as a dict: kinds, sites (site, kind, layer, ...), tags, modality, ..."""
    return store.facts(run).as_dict()


run_facts = cached(_run_facts)
