"""routeviz/store/runwriter.py: a run's lifecycle in the store (open, write the runs row,
promote or drop an overwrite, append after what is there), with real part files."""

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from routeviz.errors import RoutevizError, RunExists
from routeviz.store import MARKER, open_store, schema, write_part
from routeviz.store.runwriter import RunWriter

NOW = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)


def _write_routes(root, run, examples):
    """One expert row per example id, written as a part file under `root`."""
    n = len(examples)
    table = pa.table({"example": examples, "token": [0] * n, "layer": [0] * n,
                      "site": ["g"] * n, "kind": ["expert"] * n, "choice": [1] * n,
                      "rank": [0] * n, "weight": [0.5] * n})
    write_part(root, "routes", run, table.cast(schema.ROUTES))


def _write_examples(root, run, examples):
    cols = {f.name: [None] * len(examples) for f in schema.EXAMPLES}
    cols["example"] = examples
    write_part(root, "examples", run, pa.table(cols, schema=schema.EXAMPLES))


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
    assert (store / "routes" / "run=new").is_symlink()
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
