"""The Parquet store: `<store>/<table>/run=<run>/part-<uuid>.parquet`, read through DuckDB.

A store is a directory with a `routeviz.json` marker; no server, no lock file. Part files
are written under a temporary dot-name and renamed, so readers never see half a file; a
file that is damaged anyway is reported by name and left out of the views, and every
other file still reads.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from routeviz.errors import RoutevizError, choose
from routeviz.store import schema
from routeviz.store.query import DuckDBEngine, RunQueries

MARKER = "routeviz.json"
# 1: routes, runs, examples, tokens, tags, logits; 2: runs.finished and embeddings.site.
# Readers do not require the marker or a version: a table or column a store lacks reads
# as empty / NULL (older versions, other writers following ARCHITECTURE.md).
FORMAT_VERSION = 2
TMP_PREFIX = ".tmp-"  # a part file being written: `.tmp-<name>.writing`, renamed when whole
TMP_SUFFIX = ".writing"  # not `.parquet`, so no `*/*.parquet` glob ever reads a half file
STALE_TMP_SECONDS = 3600


# Tables smaller than this (in memory) are written uncompressed: zstd costs ~0.2-0.5 ms of
# set-up per file whatever its size (a context per page), which a trace of one input paid
# three times, to save a few hundred bytes (benchmarks/single_input.py).
COMPRESS_FROM_BYTES = 64 << 10


def _write_options(table_name: str, arrow_schema: pa.Schema, nbytes: int | None = None) -> dict:
    """Parquet options per table; timestamps in microseconds (Spark refuses nanoseconds).

    Route rows (measured in benchmarks/store_write.py): dictionary/RLE for site, kind,
    layer, rank and choice, which site-major row order turns into long runs; delta-packed
    example and token ids; float32 weights byte-stream-split
    (~3.5 bytes/row in all, lossless); float16 weights stay PLAIN, because DuckDB reads
    BYTE_STREAM_SPLIT only for 4- and 8-byte types, with a higher zstd level (~1.6).
    """
    small = nbytes is not None and nbytes < COMPRESS_FROM_BYTES
    opts = dict(compression="none" if small else "zstd", coerce_timestamps="us",
                allow_truncated_timestamps=True)
    if table_name == "routes":
        floats = [f.name for f in arrow_schema
                  if pa.types.is_floating(f.type) and f.type != pa.float16()]
        opts["use_dictionary"] = ["site", "kind", "layer", "rank", "choice"]
        opts["column_encoding"] = {name: "BYTE_STREAM_SPLIT" for name in floats}
        # ids climb by 0 or 1 from row to row in site-major order: delta-pack them
        opts["column_encoding"].update(example="DELTA_BINARY_PACKED", token="DELTA_BINARY_PACKED")
        if any(f.type == pa.float16() for f in arrow_schema) and not small:
            opts["compression_level"] = 6
    return opts


def write_part(store_path, table_name: str, run: str, table: pa.Table,
               partition: str | None = None) -> Path:
    """Write `table` as one new part file of `table_name` for `run`, atomically.

    partition: the directory name to write into instead of `run=<run>` (a staging name
    while a run is being overwritten).
    """
    directory = Path(store_path) / table_name / (partition or f"run={schema.check_run_name(run)}")
    directory.mkdir(parents=True, exist_ok=True)
    return write_file(directory, table_name, table)


def write_file(directory: Path, table_name: str, table: pa.Table) -> Path:
    """Write `table` as one new part file of `table_name` in `directory` (which exists),
    atomically: under a temporary name no `*.parquet` glob matches, then renamed."""
    name = f"part-{uuid.uuid4().hex}"
    final = os.path.join(directory, name + ".parquet")
    tmp = os.path.join(directory, f"{TMP_PREFIX}{name}{TMP_SUFFIX}")
    _write_parquet(table, table_name, tmp)
    os.replace(tmp, final)
    return Path(final)


def replace_file(path: Path, table_name: str, table: pa.Table) -> None:
    """Write `table` to `path`, replacing what is there in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.stem}{TMP_SUFFIX}")
    _write_parquet(table, table_name, tmp)
    os.replace(tmp, path)


def _write_parquet(table: pa.Table, table_name: str, path) -> None:
    """One Parquet file, through a write buffer: pyarrow's file sink makes ~4 system calls
    per column chunk (60 for a one-row examples file), the buffer one per 256 KiB."""
    with pa.BufferedOutputStream(pa.OSFile(str(path), "wb"), 256 << 10) as sink:
        pq.write_table(table, sink, **_write_options(table_name, table.schema, table.nbytes))


def init_store(path) -> Path:
    """Create a store directory (or accept an existing one) and return its path."""
    path = Path(path).expanduser()
    marker = path / MARKER
    if marker.is_file():  # an existing store (every trace opening asks): one stat
        return path
    if path.exists() and not path.is_dir():
        raise RoutevizError(f"store path {str(path)!r} is a file, not a directory")
    if path.is_dir() and not marker.exists() and any(path.iterdir()) and not _has_tables(path):
        raise RoutevizError(
            f"{str(path)!r} is a non-empty directory that is not a routeviz store; "
            "choose an empty or new directory"
        )
    path.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(json.dumps({"format": "routeviz-store", "version": FORMAT_VERSION}))
    return path


_DUCKDB_TYPES = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.int16(): "SMALLINT",
                 pa.int8(): "TINYINT", pa.float16(): "FLOAT", pa.float32(): "FLOAT",
                 pa.float64(): "DOUBLE", pa.string(): "VARCHAR", pa.binary(): "BLOB",
                 pa.bool_(): "BOOLEAN"}


def _duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _duckdb_type(t.value_type)
    if pa.types.is_list(t):
        return _duckdb_type(t.value_type) + "[]"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    return _DUCKDB_TYPES[t]


def store_version(path) -> int | None:
    """The format version the store's marker records, or None (no marker, or unreadable)."""
    try:
        return int(json.loads((Path(path) / MARKER).read_text()).get("version"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _duckdb_field(f: pa.Field) -> pa.Field:
    """DuckDB reads float16 from Parquet as float, but not from Arrow: widen for empty views."""
    if f.type == pa.float16():
        return pa.field(f.name, pa.float32())
    if f.type == pa.list_(pa.float16()):
        return pa.field(f.name, pa.list_(pa.float32()))
    if pa.types.is_dictionary(f.type):
        return pa.field(f.name, f.type.value_type)
    return f


def _has_tables(path: Path) -> bool:
    return any((path / name).is_dir() for name in schema.TABLES)


class Store(RunQueries):
    """DuckDB views over a store's tables; every query reads the Parquet files directly."""

    def __init__(self, path):
        path = Path(path).expanduser()
        if not path.exists():
            raise RoutevizError(f"store {str(path)!r} does not exist")
        if not path.is_dir():
            raise RoutevizError(f"store path {str(path)!r} is a file, not a directory")
        if not (path / MARKER).exists() and not _has_tables(path):
            raise RoutevizError(f"{str(path)!r} is not a routeviz store (no {MARKER})")
        self.path = path
        self.version = store_version(path)
        self.damaged: list[Path] = []
        self.missing: dict[str, list[str]] = {}  # table -> documented columns no file has
        self._checked: dict[Path, tuple] = {}
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        # DuckDB 2 pre-aggregates a join's probe side on its group keys; on the metrics' unit
        # joins (routes ⋈ tagged on a unique unit key) that groups 9 M rows into 9 M groups
        # before the join: 4x the CPU of Focus/Cover at 10 M rows (benchmarks/metrics_10m.py)
        self.con.execute("SET disabled_optimizers = 'partial_aggregate_pushdown'")
        # keep each part file's Parquet footer between queries: the app asks a new run's
        # files ~10 small questions a click, each reading the same footers again (issue 25:
        # ~35% of those queries' CPU). Part files are written once under a new name (a
        # rewrite is a new file, and DuckDB re-reads a footer older than its file's mtime).
        self.con.execute("SET enable_object_cache = true")
        self.engine = DuckDBEngine(self.con)
        self.refresh()

    # -- views ------------------------------------------------------------------------
    def files(self, table: str, run: str | None = None) -> list[Path]:
        pattern = f"run={run}" if run else "run=*"
        return sorted((self.path / table).glob(f"{pattern}/part-*.parquet"))

    def refresh(self) -> None:
        """Rebuild the views from the files on disk now (after another process wrote)."""
        self.damaged = []
        self.missing = {}
        self.forget_facts()
        views = self.__dict__.setdefault("_views", {})  # table -> the files its view reads
        for table, arrow_schema in schema.TABLES.items():
            good = [f for f in self.files(table) if self._readable(f)]
            # a view over the same files (each the same size and mtime) is left as it is:
            # binding one reads every file's footer, and a write changes a few tables
            # (issue 25: most of a refresh after one click's run)
            files = tuple((f, self._checked[f][:2]) for f in good)
            unchanged = views.get(table) == files
            views[table] = files
            if good:
                listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in good)
                present = set().union(*(self._checked[f][2] for f in good))
                missing = [f for f in arrow_schema if f.name not in present]
                self.missing[table] = [f.name for f in missing]
                if unchanged:
                    continue
                # a documented column no file has reads as NULL (older stores, other writers)
                filled = "".join(f", CAST(NULL AS {_duckdb_type(f.type)}) AS \"{f.name}\""
                                 for f in missing)
                # files of one schema (this version's writers) need no union by name, which
                # opens every file's footer to bind any query, before the run's files are
                # picked: 2.3x the CPU of one run's query on a 100-run store (issue 25)
                by_name = len({self._checked[f][3] for f in good}) > 1
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {table} AS SELECT *{filled} FROM read_parquet("
                    f"[{listed}], hive_partitioning = true, hive_types = {{'run': VARCHAR}}, "
                    f"union_by_name = {str(by_name).lower()})"
                )
            elif not unchanged:
                fields = [("run", pa.string())] + [_duckdb_field(f) for f in arrow_schema]
                empty = pa.schema(fields).empty_table()
                self.con.register(f"_empty_{table}", empty)
                self.con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM _empty_{table}")
        if self.damaged:
            names = ", ".join(str(p) for p in self.damaged)
            warnings.warn(f"routeviz: skipped damaged part file(s): {names}")

    def _readable(self, path: Path) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        key = (stat.st_size, stat.st_mtime_ns)
        if self._checked.get(path, ())[:2] == key:
            return True
        try:
            file_schema = pq.read_schema(path)
        except Exception:
            self.damaged.append(path)
            return False
        columns = frozenset(file_schema.names)
        layout = tuple((f.name, str(f.type)) for f in file_schema)  # names, order and types
        self._checked[path] = (*key, columns, layout)
        return True

    # -- queries --------------------------------------------------------------------
    def sql(self, query: str, params=None) -> duckdb.DuckDBPyRelation:
        """Run SQL over the views `runs`, `examples`, `tokens`, `tags`, `routes`, `logits`."""
        return self.con.sql(query, params=params)

    def query_df(self, query: str, params=None):
        return self.con.execute(query, params or []).df()

    def run_names(self) -> list[str]:
        names = set()
        for table in ("runs", "routes"):
            directory = self.path / table
            if directory.is_dir():
                names.update(p.name[4:] for p in directory.glob("run=*") if p.is_dir())
        return sorted(names)

    def require_run(self, run: str) -> str:
        return choose("run", run, self.run_names())

    def runs(self):
        """One row per run: model, created, n_examples, n_routes, config, ..."""
        df = self.query_df(
            "SELECT r.*, coalesce(c.n_routes, 0) AS n_routes FROM runs r LEFT JOIN "
            "(SELECT run, count(*) AS n_routes FROM routes GROUP BY run) c USING (run) "
            "ORDER BY r.created"
        )
        return df

    def _table(self, table: str, run: str | None, where: str = "", params=()):
        clauses, args = [], []
        if run is not None:
            self.require_run(run)
            clauses.append("run = ?")
            args.append(run)
        if where:
            clauses.append(where)
            args.extend(params)
        cond = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.query_df(f"SELECT * FROM {table}{cond}", args)

    def routes(self, run: str | None = None, site: str | None = None, kind: str | None = None):
        where, params = [], []
        if site is not None:
            where.append("site = ?")
            params.append(site)
        if kind is not None:
            where.append("kind = ?")
            params.append(choose("kind", kind, schema.KINDS))
        return self._table("routes", run, " AND ".join(where), params)

    def tokens(self, run: str | None = None):
        return self._table("tokens", run)

    def examples(self, run: str | None = None):
        return self._table("examples", run)

    def tags(self, run: str | None = None):
        return self._table("tags", run)

    def config(self, run: str) -> dict:
        self.require_run(run)
        row = self.con.execute("SELECT config FROM runs WHERE run = ?", [run]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    # -- maintenance ------------------------------------------------------------------
    def delete_run(self, run: str) -> None:
        self.require_run(run)
        delete_run_files(self.path, run)
        self.refresh()

    def clean_temporary(self, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
        """Remove part files a killed writer left half-written (older than `older_than` s)."""
        removed = []
        now = time.time()
        for staged in self.path.glob("*/.staging-*"):  # an overwrite that never finished
            if staged.is_dir() and now - staged.stat().st_mtime >= older_than:
                shutil.rmtree(staged, ignore_errors=True)
                removed.append(staged)
        for tmp in self.path.glob(f"*/run=*/{TMP_PREFIX}*"):
            try:
                if now - tmp.stat().st_mtime >= older_than:
                    tmp.unlink()
                    removed.append(tmp)
            except FileNotFoundError:
                pass
        return removed

    def close(self) -> None:
        self.con.close()


# Run files (generations, atomic swaps, deletes) live in routeviz.swap.
from routeviz.store.swap import delete_run_files, recover, run_exists  # noqa: F401


def open_store(path) -> Store:
    """Open an existing store for reading (first finishing a swap a killed writer left)."""
    if Path(path).expanduser().is_dir():
        recover(Path(path).expanduser())
    return Store(path)


def next_free_example(store_path, run: str) -> int:
    """One more than the largest example id stored for `run` (0 if none)."""
    files = sorted((Path(store_path) / "examples" / f"run={run}").glob("part-*.parquet"))
    largest = -1
    for path in files:
        stats = pq.read_metadata(path)
        column = stats.schema.to_arrow_schema().get_field_index("example")
        for g in range(stats.num_row_groups):
            s = stats.row_group(g).column(column).statistics
            if s is not None and s.has_min_max:
                largest = max(largest, int(s.max))
            else:
                largest = max(largest, max(pq.read_table(path, columns=["example"])
                                            .column(0).to_pylist(), default=-1))
    return largest + 1
