"""Runs as generations, published by atomic renames: an overwrite never leaves a gap.

Layout: a generation `<gid>` of run `<run>` is a small store of its own,
`<store>/.gen/<gid>/<table>/run=<run>/part-*.parquet`, and `<store>/<table>/run=<run>` is
a relative symlink into it. Readers (DuckDB, pyarrow, Spark) glob
`<store>/<table>/*/*.parquet` and follow the link; `.gen` is never matched by that glob.
A generation holds only the tables its run writes (made on the first file of each; a
trace of one input writes 3 of the 8), and a table it lacks has no link: it reads as
empty, as the empty directory of older generations did.

Publishing generation N of run r (an overwrite; a delete publishes a generation of no
tables):
  1. N is complete on disk: every part file renamed in, the finished runs row written.
  2. The journal `.gen/<N>.swap` ({"run": r}) is renamed into place: the commit point.
  3. Per table, a new symlink made inside `.gen/` is renamed over `<table>/run=<r>`;
     rename(2) replaces the old link in one step, so a reader finds the old generation
     or the new one, never nothing. A table N lacks is unlinked. A real directory (a
     store written before generations) is exchanged with the link by renameat2
     (RENAME_EXCHANGE) where the system has it.
  4. The journal is removed, then generations no table links to are removed.
A crash before 2 leaves the old run whole (N is unlinked garbage); after 2, the next
`recover` (every open of the store) rolls the journal forward. A process that owns a
generation holds an flock on `.gen/<gid>.lock` until it is done with it, and `recover`
leaves locked generations alone, so it never removes another process's live work; the
kernel drops the lock of a killed process.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path

from routeviz.store import schema

GEN = ".gen"


class Generation:
    """A new generation of `run`, locked by this process until `release`.

    Its table directories are made when a table's first file is written (`place`). A new
    run `claim`s its name at once by linking its runs table; every other table is linked
    as it is made, so readers see the run fill up.
    """

    def __init__(self, store_path, run: str):
        self.store_path = Path(store_path)
        self.run = schema.check_run_name(run)
        self.gid = uuid.uuid4().hex[:16]
        folder = self.store_path / GEN
        try:  # plain os calls and strings: a trace of one input opens one of these
            os.mkdir(folder)
        except FileExistsError:
            pass
        self._lock = _lock(folder / f"{self.gid}.lock")  # taken before the directory exists
        self.root = folder / self.gid
        os.mkdir(self.root)
        self.linked = False  # True: a new run, its tables linked as they are made
        self._places: dict[str, Path] = {}  # table -> its directory in this generation

    def claim(self) -> None:
        """Make this generation the new run's: link its runs table now (another process
        opening the run sees it exists); the other tables are linked as they are made."""
        self.linked = True
        self.place("runs")

    def place(self, table: str) -> Path:
        """The directory of `table`'s files in this generation, made (and, for a new run,
        linked) on the first call."""
        directory = self._places.get(table)
        if directory is not None:
            return directory
        partition = f"run={self.run}"
        directory = os.path.join(self.root, table, partition)
        for folder in (os.path.join(self.root, table), directory):
            try:  # each on its own: another rank writing into this generation may have
                os.mkdir(folder)  # made the table's folder and not yet its partition
            except FileExistsError:
                pass
        self._places[table] = directory = Path(directory)
        if self.linked:
            self._link(table)
        return directory

    def link_rest(self) -> None:
        """Link the tables of a new run that other writers made here (other ranks, a
        caller writing into `root`): called before the run is let go."""
        if not self.linked:
            return
        for entry in os.scandir(self.root):
            if entry.name in schema.TABLES and entry.name not in self._places:
                self.place(entry.name)

    def _link(self, table: str) -> None:
        store, partition = str(self.store_path), f"run={self.run}"
        place = os.path.join(store, table, partition)
        target = os.path.join("..", GEN, self.gid, table, partition)
        if table != "runs" and not self._still_ours(store, partition):
            return  # another process took the run (see below): write where nobody reads
        try:
            try:
                os.symlink(target, place)
            except FileNotFoundError:  # the store's first run of this table
                os.makedirs(os.path.dirname(place), exist_ok=True)
                os.symlink(target, place)
        except FileExistsError:
            if table == "runs":  # someone made the run meanwhile: swap as an overwrite
                _roll_forward(self.store_path, self.run, self.gid)
            else:  # a process whose claim this one replaced linked this table: ours wins
                link = os.path.join(store, GEN, f"{self.gid}.link-{table}")
                os.symlink(target, link)
                os.replace(link, place)

    def _still_ours(self, store: str, partition: str) -> bool:
        try:
            held = os.readlink(os.path.join(store, "runs", partition))
        except OSError:
            return False
        return Path(held).parts[2:3] == (self.gid,)

    def publish(self) -> None:
        """Swap this generation in for the run's current files (see the module docstring)."""
        publish(self.store_path, self.run, self.gid)

    def discard(self) -> None:
        """Remove this generation (never linked: an overwrite that recorded nothing)."""
        _remove(self.root)
        (self.root.parent / f"{self.gid}.lock").unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def publish(store_path, run: str, gid: str) -> None:
    """Make generation `gid` the run's files in every table, through a journal."""
    folder = Path(store_path) / GEN
    journal = folder / f"{gid}.swap"
    tmp = folder / f"{gid}.swap-tmp"
    # hold the generations being replaced, so that no other process's clean-up removes
    # one while some tables still link to it
    held = [_lock(folder / f"{old}.lock") for old in _linked_generations(store_path, run)]
    try:
        with open(tmp, "w") as f:
            json.dump({"run": run}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, journal)  # the commit point
        _roll_forward(store_path, run, gid)
        journal.unlink()
    finally:
        for fd in held:
            os.close(fd)
    collect(store_path)


def delete_run_files(store_path, run: str) -> None:
    """Remove `run` from every table: publish a generation that has no tables."""
    schema.check_run_name(run)
    folder = Path(store_path) / GEN
    folder.mkdir(parents=True, exist_ok=True)
    gid = uuid.uuid4().hex[:16]
    lock = _lock(folder / f"{gid}.lock")
    try:
        publish(store_path, run, gid)
    finally:
        os.close(lock)
        (folder / f"{gid}.lock").unlink(missing_ok=True)


def run_exists(store_path, run: str) -> bool:
    return any((Path(store_path) / t / f"run={run}").is_dir() for t in ("runs", "routes"))


def recover(store_path, collect_garbage: bool = True) -> None:
    """Finish swaps a killed process committed and (unless `collect_garbage` is false: a
    trace opening, which must stay cheap in a store of many runs) remove generations
    nothing links to."""
    if not (Path(store_path) / GEN).is_dir():
        return
    try:
        if collect_garbage:
            collect(store_path)
        else:
            finish_swaps(store_path)
    except OSError as err:  # a read-only store: read it as it is
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise


def collect(store_path) -> None:
    """Roll unlocked journals forward; then, unless a live swap is under way, remove every
    unlocked generation, stray link and set-aside directory that no table links to."""
    store_path = Path(store_path)
    folder = store_path / GEN
    if finish_swaps(store_path):
        return
    _collect_unlinked(folder, _linked_generations(store_path))


def finish_swaps(store_path) -> bool:
    """Roll forward the swaps that killed processes committed (their journals); True while
    another process is still publishing one."""
    store_path = Path(store_path)
    folder = store_path / GEN
    pending = False
    # names, not pathlib's glob: every trace opening lists `.gen` (two entries per run)
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".swap")):
        journal = folder / name
        gid = name.split(".")[0]
        lock = _try_lock(folder / f"{gid}.lock")
        if lock is None:  # its process is still publishing
            pending = True
            continue
        try:
            if journal.exists():
                _roll_forward(store_path, json.loads(journal.read_text())["run"], gid)
                journal.unlink()
        finally:
            os.close(lock)
    return pending


def _collect_unlinked(folder: Path, linked: set) -> None:
    # one listing, grouped by generation (was a glob of the folder per generation: with
    # 1,000 runs, 2 CPU-s on every open_store and publish); entries of a generation are
    # made only under its lock, so one made after the listing is left for the next time
    entries: dict[str, list[str]] = {}
    for name in os.listdir(folder):
        entries.setdefault(name.split(".")[0], []).append(name)
    for gid in sorted(entries):
        if gid in linked and set(entries[gid]) <= {gid, f"{gid}.lock"}:
            continue  # a live generation with nothing stray beside it
        lock_path = folder / f"{gid}.lock"
        lock = _try_lock(lock_path)
        if lock is None:
            continue
        try:
            for name in entries[gid]:
                path = folder / name
                if path == lock_path or (name == gid and gid in linked):
                    continue
                _remove(path)
            if gid not in linked:
                lock_path.unlink(missing_ok=True)
        finally:
            os.close(lock)


def _roll_forward(store_path, run: str, gid: str) -> None:
    """Point every table's `run=<run>` at generation `gid`, or remove it where `gid` has no
    such table. Idempotent: a step already done is skipped."""
    store_path = Path(store_path)
    folder = store_path / GEN
    for table in schema.TABLES:
        place = store_path / table / f"run={run}"
        target = os.path.join("..", GEN, gid, table, f"run={run}")
        if not (folder / gid / table / f"run={run}").is_dir():
            if place.is_symlink():
                place.unlink()
            elif place.is_dir():
                os.rename(place, folder / f"{gid}.old-{table}")  # leaves the table's glob
                _remove(folder / f"{gid}.old-{table}")
            continue
        if place.is_symlink() and os.readlink(place) == target:
            continue
        link = folder / f"{gid}.link-{table}"
        _remove(link)
        os.symlink(target, link)
        if not place.parent.is_dir():
            place.parent.mkdir(parents=True)
        if place.is_dir() and not place.is_symlink():
            if not _exchange(link, place):  # no renameat2: a moment with no files
                os.rename(place, folder / f"{gid}.old-{table}")
                os.replace(link, place)
        else:
            os.replace(link, place)
        _remove(link)  # the old directory, after an exchange
        _remove(folder / f"{gid}.old-{table}")


def _linked_generations(store_path, run: str | None = None) -> set[str]:
    """The generations some table links to (of `run` only, if given)."""
    linked = set()
    for table in schema.TABLES:
        directory = Path(store_path) / table
        if not directory.is_dir():
            continue
        for place in directory.glob(f"run={run}" if run else "run=*"):
            if place.is_symlink():
                parts = Path(os.readlink(place)).parts
                if len(parts) > 2 and parts[:2] == ("..", GEN):
                    linked.add(parts[2])
    return linked


def _try_lock(path: Path) -> int | None:
    """An exclusive flock on `path` (created if missing), or None if another process has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _lock(path: Path) -> int:
    """An exclusive flock on `path`, waiting for another process's clean-up to let go."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
