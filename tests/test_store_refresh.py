"""Store.refresh rebuilds only the views whose files changed (issue 25: binding a view reads
every file's footer); what every view reads stays what is on disk."""

import shutil

import routeviz
from tests.test_store import _trace


def _view_sql(store, table: str) -> str:
    return store.con.execute("SELECT sql FROM duckdb_views() WHERE view_name = $v",
                             {"v": table}).fetchone()[0]


def test_refresh_rebuilds_the_views_of_changed_tables_and_reads_what_is_on_disk(store_dir):
    _trace(store_dir, "a")
    store = routeviz.open_store(store_dir)
    before = {t: _view_sql(store, t) for t in ("routes", "logits")}
    store.refresh()  # nothing written: the same views
    assert {t: _view_sql(store, t) for t in before} == before
    _trace(store_dir, "b")
    store.refresh()
    assert "run=b" in _view_sql(store, "routes")  # a new run's files: rebuilt
    assert _view_sql(store, "logits") == before["logits"]  # no logits written: left as is
    assert store.run_names() == ["a", "b"] and len(store.routes("b")) == 6
    gone = store_dir / "routes" / "run=b"  # a link into the store's generations, or a folder
    gone.unlink() if gone.is_symlink() else shutil.rmtree(gone)  # files gone: the view follows
    store.refresh()
    assert set(store.sql("SELECT DISTINCT run FROM routes").df().run) == {"a"}
    victim = next((store_dir / "routes" / "run=a").glob("part-*.parquet"))
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])  # damaged now
    store.refresh()
    assert victim in store.damaged and victim.name not in _view_sql(store, "routes")


def test_views_over_files_of_one_schema_read_what_a_union_by_name_reads(store_dir):
    import pandas as pd

    for run in ("a", "b", "c"):
        _trace(store_dir, run)
    store = routeviz.open_store(store_dir)
    assert "union_by_name = false" in _view_sql(store, "routes")  # one schema: no union
    tables = [t for t in ("routes", "tokens", "examples", "tags", "runs") if store.files(t)]
    assert {"routes", "runs"} <= set(tables)
    for table in tables:
        files = ", ".join(f"'{f}'" for f in store.files(table))
        union = store.con.execute(
            f"SELECT * FROM read_parquet([{files}], hive_partitioning = true, "
            "hive_types = {'run': VARCHAR}, union_by_name = true) ORDER BY ALL").df()
        viewed = store.con.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
        pd.testing.assert_frame_equal(viewed[union.columns], union)
