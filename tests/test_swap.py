"""Overwriting a run is atomic: killed (SIGKILL) at any filesystem step of the overwrite,
the store holds the old run or the new one, whole, in every table.

A forked child runs the overwrite with an audit hook that counts filesystem steps
(mkdir, open for writing, rename, symlink, unlink, rmdir, rmtree; Python raises an audit
event before each) and kills its own process at step N. After each kill the run is read
raw (DuckDB over `<table>/*/*.parquet`, as an outside reader would), then through
`routeviz.open_store` (which finishes or undoes what the killed process left), then raw
again.
"""

import os
import shutil
import signal
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch

import routeviz
from routeviz.store import schema
from routeviz.store.swap import GEN
from tests.toy import ToyMoE, register_toy

pytestmark = pytest.mark.slow  # kills an overwrite at many points, a process each

RUN = "big"
STEP_EVENTS = {"os.mkdir", "os.rename", "os.symlink", "os.remove", "os.rmdir", "shutil.rmtree"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


def _trace(store, seed: int, batches: int, tags=True, **options):
    torch.manual_seed(seed)
    model = ToyMoE(layers=4, k=2)
    with routeviz.trace(model, store, RUN, flush_rows=10_000, flush_seconds=60,
                        **options) as tracer:
        for step in range(batches):
            ids = torch.randint(0, 16, (8, 32))  # [b, s]
            with tracer.batch(examples=range(8 * step, 8 * step + 8),
                              tokens=[[str(t) for t in row] for row in ids.tolist()],
                              tags=[{"seed": str(seed), "even": str(t % 2 == 0)}
                                    for t in ids[:, 0].tolist()] if tags else None):
                model(ids)


def _is_step(event: str, args) -> bool:
    if event in STEP_EVENTS:
        return True
    if event == "open":
        mode, flags = args[1], args[2]
        return (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (mode is None and bool(flags & WRITE_FLAGS))
    return False


def _overwrite_in_child(store, kill_at: int, report=None) -> int:
    """Fork; the child overwrites the run (new data), SIGKILLed at step `kill_at` (0: never).

    Returns the child's wait status; with `report`, the child writes there its number of
    steps, the step that opens the swap journal and the step that removes it.
    """
    pid = os.fork()
    if pid:
        return os.waitpid(pid, 0)[1]
    try:  # the child: never returns into pytest
        torch.set_num_threads(1)
        steps = [0, 0, 0]  # all, journal opened, journal removed

        def audit(event, args):
            if _is_step(event, args):
                steps[0] += 1
                if event == "open" and str(args[0]).endswith(".swap-tmp"):
                    steps[1] = steps[0]
                if event == "os.remove" and str(args[0]).endswith(".swap"):
                    steps[2] = steps[0]
                if steps[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

        sys.addaudithook(audit)
        _trace(store, seed=1, batches=20, overwrite=True, tags=False)
        if report:
            with open(report, "w") as f:
                f.write(" ".join(map(str, steps)))
        os._exit(0)
    except BaseException:  # noqa: BLE001 (the forked child must never return into pytest)
        os._exit(1)


def _fingerprint(con, table: str, source: str) -> tuple:
    """Row count and an order-free hash of every row (leaving out the run column and the
    runs row's clock times, which differ between two traces of the same data)."""
    left_out = "run, created, finished" if table == "runs" else "run"
    try:
        return con.execute(f"SELECT count(*), sum(hash(t)::HUGEINT) FROM "
                           f"(SELECT * EXCLUDE ({left_out}) FROM {source}) t").fetchone()
    except duckdb.IOException:  # no file matches the glob
        return (0, None)


def _raw(store) -> dict:
    con = duckdb.connect()
    return {t: _fingerprint(con, t, f"read_parquet('{store}/{t}/*/*.parquet', "
                                 "hive_partitioning = true, union_by_name = true) "
                                 f"WHERE run = '{RUN}'")
            for t in schema.TABLES}


def _opened(store) -> dict:
    st = routeviz.open_store(store)
    try:
        return {t: _fingerprint(st.con, t, f"{t} WHERE run = '{RUN}'") for t in schema.TABLES}
    finally:
        st.close()


def _kill_points(steps: tuple, spread: int) -> list[int]:
    """`spread` steps of the writing, every step from writing the journal to removing it,
    and 2 steps of the clean-up after it (well before the last: step counts vary a little
    from run to run)."""
    total, journal, journal_removed = steps
    early = np.linspace(1, journal - 1, spread).astype(int).tolist()
    late = [journal_removed + 1, (journal_removed + total) // 2]
    return sorted(set(early) | set(range(journal, journal_removed + 1)) | set(late))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """An old run (with tags) and the reads expected of it and of the new run (no tags)."""
    register_toy()
    base = tmp_path_factory.mktemp("swap")
    old = base / "old"
    _trace(old, seed=0, batches=30)
    new = base / "new"
    shutil.copytree(old, new, symlinks=True)
    report = base / "steps"
    assert _overwrite_in_child(new, 0, report) == 0
    steps = tuple(map(int, report.read_text().split()))
    expected = {"old": (_raw(old), _opened(old)), "new": (_raw(new), _opened(new))}
    assert expected["old"] != expected["new"]
    assert all(expected["old"][0][t][0] for t in ("runs", "examples", "tokens", "tags", "routes"))
    assert expected["new"][0]["tags"] == (0, None)  # a table the new run lacks
    return old, expected, steps


def _legacy(store):
    """The run as real directories (a store written before generations)."""
    for table in schema.TABLES:
        place = store / table / f"run={RUN}"
        if not place.is_symlink():  # a table the run never wrote
            continue
        real = place.resolve()
        place.unlink()
        os.rename(real, place)
    shutil.rmtree(store / GEN)


@pytest.mark.parametrize("layout", ["linked", "legacy"])
def test_a_killed_overwrite_leaves_the_old_run_or_the_new_one(stores, tmp_path, layout):
    old, expected, steps = stores
    points = _kill_points(steps, spread=4 if layout == "linked" else 1)
    assert 15 <= len(points) <= 40, steps
    seen = set()
    for n, kill_at in enumerate(points):
        store = tmp_path / f"s{n}"
        shutil.copytree(old, store, symlinks=True)
        if layout == "legacy":
            _legacy(store)
        status = _overwrite_in_child(store, kill_at)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, kill_at
        raw = _raw(store)
        for table, got in raw.items():  # each table whole, before any clean-up
            assert got in (expected["old"][0][table], expected["new"][0][table]), (kill_at, table)
        opened = _opened(store)
        state = "old" if opened == expected["old"][1] else "new"
        assert opened == expected[state][1], kill_at  # all tables of one generation
        assert _raw(store) == expected[state][0], kill_at
        linked = {Path(os.readlink(p)).parts[2] for p in store.glob(f"*/run={RUN}")
                  if p.is_symlink()}
        left = {p.name for p in (store / GEN).iterdir()} if (store / GEN).exists() else set()
        assert left == {n for g in linked for n in (g, f"{g}.lock")}, kill_at  # cleaned up
        seen.add(state)
    assert seen == {"old", "new"}  # the kills fell on both sides of the commit point
