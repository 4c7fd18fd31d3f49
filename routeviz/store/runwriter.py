"""One run's place in the store while it is traced: open, stage, promote, the runs row.

A new run gets a generation that claims the run at once and links each table as its
first file is written (readers see it fill up); an overwrite writes a generation beside
the old run and swaps it in at the end (routeviz.swap), so a trace that fails or is killed
leaves the old run as it was; an append writes into the run's current files. Under
torchrun, rank 0 opens and promotes; every rank writes into the root rank 0 chose.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from routeviz.errors import RoutevizError, RunExists
from routeviz.store import schema
from routeviz.store.core import init_store, next_free_example, replace_file
from routeviz.store.swap import Generation, recover, run_exists


RUN_FILE = "part-run.parquet"  # the run's one runs row, replaced in place


class RunWriter:
    def __init__(self, store_path, run: str, *, overwrite=False, append=False):
        if overwrite and append:
            raise RoutevizError("choose overwrite or append, not both")
        self.store_path = Path(store_path)
        self.run = schema.check_run_name(run)
        self.overwrite = overwrite
        self.append = append
        self.root: Path | None = None  # the store, or the generation the rows go to
        self.staged = False  # True: an overwrite, swapped in by finish()
        self._generation: Generation | None = None
        self._places: dict[str, Path] = {}  # table -> the directory its files go to

    def open(self, ids_after_largest: bool = False) -> dict:
        """Check the run against the store and choose where its rows go (rank 0 only).

        Returns what every rank needs: the root to write under, the run's example count
        so far (append) and the first default example id (after the largest stored id if
        `ids_after_largest`: ranks' default ids can leave gaps).
        """
        init_store(self.store_path)
        recover(self.store_path, collect_garbage=False)  # open_store and publish collect
        exists = run_exists(self.store_path, self.run)
        if exists and not (self.overwrite or self.append):
            raise RunExists(f"run {self.run!r} already exists in {str(self.store_path)!r}; "
                            "pass overwrite=True (CLI: --overwrite) to replace it")
        base = first_id = 0
        if exists and self.append:
            self.root = self.store_path
            base = first_id = self._existing_examples()
            if ids_after_largest:
                first_id = max(base, next_free_example(self.store_path, self.run))
        else:
            self._generation = Generation(self.store_path, self.run)
            self.root = self._generation.root
            self.staged = exists
            if not exists:
                self._generation.claim()
        return {"root": str(self.root), "staged": self.staged, "base": base,
                "first_id": first_id}

    def join(self, opened: dict) -> None:
        """Take the decision of `open` (made here or on rank 0)."""
        self.root, self.staged = Path(opened["root"]), opened["staged"]
        self._places = {}

    def place(self, table: str) -> Path:
        """The directory `table`'s part files go to, made on the first call (and linked in,
        for a new run): what the writer writes into."""
        if self._generation is not None:
            return self._generation.place(table)
        directory = self._places.get(table)
        if directory is None:
            directory = (self.root or self.store_path) / table / f"run={self.run}"
            directory.mkdir(parents=True, exist_ok=True)
            self._places[table] = directory
        return directory

    def write_row(self, *, model: str, created, finished: bool, n_examples: int,
                  config: dict) -> None:
        """Write (replace) the run's one row of the runs table."""
        from routeviz.version import __version__

        now = dt.datetime.now(dt.timezone.utc)
        table = pa.table(
            {
                "model": [model],
                "created": [created],
                "finished": [now if finished else None],
                "routeviz_version": [__version__],
                "n_examples": [n_examples],
                "config": [json.dumps(config, default=str)],
            },
            schema=schema.RUNS,
        )
        replace_file(self.place("runs") / RUN_FILE, "runs", table)

    def finish(self, keep: bool) -> None:
        """Promote a staged overwrite (or drop it if `keep` is false); let the run go."""
        generation, self._generation = self._generation, None
        if generation is None:
            return
        generation.link_rest()  # a new run: tables other writers made in the generation
        if self.staged and keep:
            generation.publish()
        elif self.staged:
            generation.discard()
        generation.release()

    def _existing_examples(self) -> int:
        path = self._run_file()
        if not path.exists():
            return 0
        try:
            return int(pq.read_table(path).column("n_examples")[0].as_py() or 0)
        except (OSError, pa.ArrowException, KeyError, IndexError, TypeError, ValueError):
            return 0  # an unreadable runs row: count from 0, as a new run

    def _run_file(self) -> Path:
        return (self.root or self.store_path) / "runs" / f"run={self.run}" / RUN_FILE
