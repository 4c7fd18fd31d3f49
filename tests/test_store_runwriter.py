"""routeviz/store/runwriter.py: a run's lifecycle in the store (open, write the runs row,
promote or drop an overwrite, append after what is there), with real part files."""

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from routeviz.errors import RoutevizError, RunExists
from routeviz.store import MARKER, init_store, open_store, schema, write_part
from routeviz.store.core import write_file
from routeviz.store.runwriter import RunWriter
from routeviz.store.swap import Generation

NOW = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)


def _routes_table(examples):
    """One expert row per example id."""
    n = len(examples)
    table = pa.table({"example": examples, "token": [0] * n, "layer": [0] * n,
                      "site": ["g"] * n, "kind": ["expert"] * n, "choice": [1] * n,
                      "rank": [0] * n, "weight": [0.5] * n})
    return table.cast(schema.ROUTES)


def _write_routes(root, run, examples):
    """One expert row per example id, written as a part file under `root`."""
    write_part(root, "routes", run, _routes_table(examples))


def _examples_table(examples):
    cols = {f.name: [None] * len(examples) for f in schema.EXAMPLES}
    cols["example"] = examples
    return pa.table(cols, schema=schema.EXAMPLES)


def _write_examples(root, run, examples):
    write_part(root, "examples", run, _examples_table(examples))


def _record(store, run, examples, config=None, **flags):
    """A whole run through RunWriter: open, routes, runs row, finish; returns the writer."""
    writer = RunWriter(store, run, **flags)
    opened = writer.open()
    _write_routes(writer.root, run, examples)
    writer.write_row(model="toy", created=NOW, finished=True,
                     n_examples=opened["base"] + len(examples), config=config or {})
    writer.finish(keep=True)
    return writer


def test_bad_flags_and_names_are_refused_before_touching_disk(tmp_path):
    with pytest.raises(RoutevizError, match="choose overwrite or append, not both"):
        RunWriter(tmp_path / "s", "r", overwrite=True, append=True)
    with pytest.raises(RoutevizError, match="invalid run name"):
        RunWriter(tmp_path / "s", "../r")
    assert not (tmp_path / "s").exists()


def test_a_new_run_is_linked_at_once_and_its_row_replaced_in_place(tmp_path):
    store = tmp_path / "s"
    writer = RunWriter(store, "new")
    opened = writer.open()
    assert (store / MARKER).is_file()
    assert opened == {"root": str(writer.root), "staged": False, "base": 0, "first_id": 0}
    assert writer.root.parent.name == ".gen"  # a generation, linked in: readers see it fill
    assert (store / "runs" / "run=new").is_symlink()  # the name is claimed at once
    with pytest.raises(RunExists):  # another writer sees the run at once
        RunWriter(store, "new").open()
    assert not (store / "routes" / "run=new").exists()  # a table is made when written
    write_file(writer.place("routes"), "routes", _routes_table([0]))
    assert (store / "routes" / "run=new").is_symlink()  # ... and linked at once
    assert open_store(store).routes("new").example.tolist() == [0]
    writer.write_row(model="toy", created=NOW, finished=False, n_examples=0, config={"k": 2})
    row = open_store(store).runs().set_index("run").loc["new"]
    assert row.model == "toy" and row.n_examples == 0 and pd.isna(row.finished)
    writer.write_row(model="toy", created=NOW, finished=True, n_examples=3,
                     config={"k": 2, "path": tmp_path})  # a non-JSON value is stored as text
    writer.finish(keep=True)
    reread = open_store(store)
    runs = reread.runs()
    assert len(runs) == 1 and runs.n_examples.tolist() == [3]  # one runs row, replaced
    assert runs.finished.notna().all()
    assert reread.config("new") == {"k": 2, "path": str(tmp_path)}


def test_a_new_run_holds_only_the_tables_it_writes(tmp_path):
    """A trace of one input writes 3 of the 8 tables: its generation makes and links those
    only; a table another writer put into the generation (another rank) is linked when the
    run is let go; the tables it lacks read as empty."""
    store = tmp_path / "s"
    writer = RunWriter(store, "new")
    writer.open()
    write_file(writer.place("routes"), "routes", _routes_table([0, 1]))
    _write_examples(writer.root, "new", [0, 1])  # straight into the generation, as a rank
    assert not (store / "examples" / "run=new").exists()
    writer.write_row(model="toy", created=NOW, finished=True, n_examples=2, config={})
    writer.finish(keep=True)
    assert sorted(p.name for p in writer.root.iterdir()) == ["examples", "routes", "runs"]
    linked = sorted(p.parent.name for p in store.glob("*/run=new"))
    assert linked == ["examples", "routes", "runs"]
    assert all(p.is_symlink() for p in store.glob("*/run=new"))
    reread = open_store(store)
    assert reread.examples("new").example.tolist() == [0, 1]
    assert reread.routes("new").example.tolist() == [0, 1]
    assert reread.tags("new").empty and reread.tokens("new").empty


def test_of_two_processes_making_one_new_run_the_last_claim_has_every_table(tmp_path):
    """Two writers that both found the run absent: the later claim takes the run as an
    overwrite would, and the earlier writer links no further table (no mixed run)."""
    store = tmp_path / "s"
    init_store(store)
    first, second = Generation(store, "r"), Generation(store, "r")
    first.claim()
    write_file(first.place("routes"), "routes", _routes_table([1]))
    second.claim()  # the name is taken: swap as an overwrite
    write_file(first.place("examples"), "examples", _examples_table([1]))  # lost the run
    write_file(second.place("routes"), "routes", _routes_table([2]))
    write_file(second.place("examples"), "examples", _examples_table([2]))
    targets = {p.parent.name: Path(os.readlink(p)).parts[2] for p in store.glob("*/run=r")}
    assert targets == {"runs": second.gid, "routes": second.gid, "examples": second.gid}
    first.release()
    second.release()
    reread = open_store(store)
    assert reread.routes("r").example.tolist() == [2]
    assert reread.examples("r").example.tolist() == [2]


def test_an_existing_run_needs_overwrite_or_append(tmp_path):
    _record(tmp_path / "s", "r", [0])
    with pytest.raises(RunExists, match="run 'r' already exists.*overwrite=True"):
        RunWriter(tmp_path / "s", "r").open()


def test_a_dropped_overwrite_leaves_the_old_run_whole(tmp_path):
    store = tmp_path / "s"
    _record(store, "r", [0], config={"v": 1})
    writer = RunWriter(store, "r", overwrite=True)
    opened = writer.open()
    assert opened["staged"] is True and opened["base"] == 0
    _write_routes(writer.root, "r", [0, 1, 2])
    assert len(open_store(store).routes("r")) == 1  # staged rows are not read meanwhile
    writer.finish(keep=False)
    assert not writer.root.exists()
    reread = open_store(store)
    assert reread.routes("r").example.tolist() == [0] and reread.config("r") == {"v": 1}


def test_a_kept_overwrite_replaces_the_run(tmp_path):
    store = tmp_path / "s"
    _record(store, "r", [0], config={"v": 1})
    _record(store, "r", [0, 1, 2], config={"v": 2}, overwrite=True)
    reread = open_store(store)
    assert sorted(reread.routes("r").example) == [0, 1, 2] and reread.config("r") == {"v": 2}
    assert reread.run_names() == ["r"]


def test_append_counts_on_from_the_runs_row_or_the_largest_example(tmp_path):
    store = tmp_path / "s"
    _record(store, "r", [0, 1, 2])
    _write_examples(store, "r", [0, 1, 9])  # a rank left a gap of ids
    writer = RunWriter(store, "r", append=True)
    assert writer.open() == {"root": str(store), "staged": False, "base": 3, "first_id": 3}
    assert writer.open(ids_after_largest=True)["first_id"] == 10
    _record(store, "r", [3, 4], append=True)
    reread = open_store(store)
    assert sorted(reread.routes("r").example) == [0, 1, 2, 3, 4]
    assert reread.runs().n_examples.tolist() == [5]


def test_an_unreadable_runs_row_counts_from_zero(tmp_path):
    store = tmp_path / "s"
    writer = _record(store, "r", [0])
    writer._run_file().write_bytes(b"not parquet")
    assert RunWriter(store, "r", append=True).open()["base"] == 0


def test_join_takes_the_decision_rank_zero_made(tmp_path):
    writer = RunWriter(tmp_path / "s", "r")
    writer.join({"root": str(tmp_path / "elsewhere"), "staged": True, "base": 4, "first_id": 4})
    assert writer.root == tmp_path / "elsewhere" and writer.staged is True
    writer.finish(keep=True)  # no generation of its own: nothing to publish or release
    assert not (tmp_path / "s").exists()


def test_collect_removes_garbage_and_leaves_live_generations_unlocked(tmp_path, monkeypatch):
    """Clean-up lists `.gen` once and locks only the generations it has something to remove
    from (not every live one, which cost a glob of the folder each: 2 CPU-s at 1,000 runs)."""
    from routeviz.store import swap

    store = tmp_path / "s"
    for n in range(5):
        _record(store, f"r{n}", [0])
    folder = store / swap.GEN
    live = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert len(live) == 5
    (folder / "0123456789abcdef").mkdir()  # a killed overwrite's generation, never linked
    (folder / "0123456789abcdef" / "routes").mkdir()
    (folder / f"{live[0]}.link-routes").symlink_to("nowhere")  # a killed swap's stray link
    locked = []
    real_try_lock = swap._try_lock
    monkeypatch.setattr(swap, "_try_lock", lambda path: locked.append(path.name)
                        or real_try_lock(path))
    swap.collect(store)
    assert sorted(locked) == sorted(["0123456789abcdef.lock", f"{live[0]}.lock"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [g for g in live] + [f"{g}.lock" for g in live])
    assert sorted(open_store(store).run_names()) == [f"r{n}" for n in range(5)]


def test_a_rank_finding_the_table_folder_made_still_gets_its_partition(tmp_path):
    """Two ranks write into one generation: one has made a table's folder and not yet its
    partition when the other asks for it; the other's place() makes the partition, and its
    part file goes in (before: the rank skipped the partition and its write failed)."""
    init_store(tmp_path)
    generation = Generation(tmp_path, "r")
    generation.claim()
    os.mkdir(generation.root / "routes")  # the other rank, half way through
    place = generation.place("routes")
    assert place.is_dir() and place == generation.root / "routes" / "run=r"
    write_file(place, "routes", _routes_table([0, 1]))
    generation.release()
    assert sorted(open_store(tmp_path).routes("r").example) == [0, 1]
