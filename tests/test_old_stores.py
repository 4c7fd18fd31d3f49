"""A store written per ARCHITECTURE.md's documented columns only — by an older routeviz or
another writer: `runs` without `finished`, no tags / logits / embeddings tables, no marker
file — reads in `routeviz runs`, `routeviz metrics` and the app's Runs page."""

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from routeviz.cli import main
from routeviz.store import FORMAT_VERSION, init_store, open_store, store_version
from tests import app_support
from tests.app_support import open_page

toy_models = app_support.toy_models  # shared fixture (the app needs its sample models)

CREATED = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def _write(path, table: str, run: str, columns: dict):
    directory = path / table / f"run={run}"
    directory.mkdir(parents=True)
    pq.write_table(pa.table(columns), directory / "part-0.parquet")


@pytest.fixture
def documented_store(tmp_path):
    """One run, "old": two tokens, one top-1 expert site with 2 experts, an exit per token."""
    path = tmp_path / "old-store"
    _write(path, "runs", "old", {
        "model": ["other-writer"], "created": pa.array([CREATED], pa.timestamp("us", "UTC")),
        "routeviz_version": ["0.1"], "n_examples": pa.array([1], pa.int64()),
        "config": [json.dumps({"n_experts": 2, "n_layers": 2})]})
    _write(path, "examples", "old", {
        "example": pa.array([0], pa.int64()), "modality": ["text"], "source": ["a b"],
        "label": pa.array([None], pa.string()), "prediction": pa.array([None], pa.string()),
        "n_tokens": pa.array([2], pa.int32())})
    _write(path, "tokens", "old", {"example": pa.array([0, 0], pa.int64()),
                                   "token": pa.array([0, 1], pa.int32()), "text": ["a", "b"]})
    _write(path, "routes", "old", {
        "example": pa.array([0, 0, 0, 0], pa.int64()), "token": pa.array([0, 1, 0, 1], pa.int32()),
        "layer": pa.array([0, 0, 1, 1], pa.int16()), "site": ["moe", "moe", "head", "head"],
        "kind": ["expert", "expert", "exit", "exit"], "choice": pa.array([1, 0, 1, 0], pa.int32()),
        "rank": pa.array([0, 0, 0, 0], pa.int8()),
        "weight": pa.array([0.9, 0.8, 0.7, 0.6], pa.float32())})
    return path


def test_runs_json_without_finished(documented_store, capsys):
    assert store_version(documented_store) is None  # no marker: readers do not need one
    assert main(["runs", "--store", str(documented_store), "--json"]) in (0, None)
    [row] = json.loads(capsys.readouterr().out)
    assert row["run"] == "old" and row["model"] == "other-writer"
    assert row["finished"] is None and row["n_routes"] == 4 and row["n_examples"] == 1
    assert row["config"] == {"n_experts": 2, "n_layers": 2}
    assert row["created"].startswith("2024-05-01")
    main(["runs", "--store", str(documented_store)])
    line = capsys.readouterr().out
    assert "old" in line and "unfinished" not in line  # the store never said


def test_metrics_json_without_optional_tables(documented_store, capsys):
    assert main(["metrics", "--store", str(documented_store), "--run", "old", "--json"]) in (0, None)
    result = json.loads(capsys.readouterr().out)
    assert result["kinds"] == ["exit", "expert"] and result["n_routes"] == 4
    assert result["focus_cover"] == []  # no tags table: said in notes, not an error
    assert any("no tags" in note for note in result["notes"])
    [moe] = result["load"]
    assert moe["counts"] == [1, 1] and moe["n_experts"] == 2
    assert result["exits"]["per_token"][0]["count"] == 1  # token 1 exited at layer 0


def test_missing_columns_and_tables_read_as_null_and_empty(documented_store):
    store = open_store(documented_store)
    assert "finished" in store.missing["runs"]
    assert store.runs()["finished"].isna().all()
    assert store.tags("old").empty and store.query_df("SELECT count(*) AS n FROM logits").n[0] == 0
    examples = store.examples("old")
    assert examples["image"].isna().all() and int(examples["n_tokens"].iloc[0]) == 2
    facts = store.facts("old")
    assert facts.kinds == ["exit", "expert"] and facts.tags == [] and not facts.has_embeddings
    assert facts.n_experts == {"moe": 2} and facts.n_examples == 1


def test_embeddings_without_site_read_with_a_null_site(documented_store):
    _write(documented_store, "embeddings", "old", {
        "example": pa.array([0], pa.int64()), "token": pa.array([0], pa.int32()),
        "layer": pa.array([0], pa.int16()),
        "vector": pa.array([[0.5, 1.0]], pa.list_(pa.float16()))})
    store = open_store(documented_store)
    row = store.query_df("SELECT * FROM embeddings")
    assert len(row) == 1 and store.facts("old").has_embeddings
    if "site" in row.columns:  # the documented column, filled when a writer left it out
        assert row["site"].isna().all()


def test_new_stores_record_their_format_version(tmp_path):
    init_store(tmp_path / "new")
    assert store_version(tmp_path / "new") == FORMAT_VERSION


def test_runs_page_lists_a_store_without_finished(documented_store, toy_models):
    at = open_page(documented_store, "runs")
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["old"]
    assert int(table.set_index("run").loc["old", "n_routes"]) == 4
