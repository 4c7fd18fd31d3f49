"""routeviz/store/query.py: the SQL engine (named $parameters, temp views) and the facts and
small frames a run answers, on hand-written stores (tests/metrics_store.py) with known rows."""

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from routeviz.errors import RoutevizError
from routeviz.store import open_store, schema, write_part
from routeviz.store.query import DuckDBEngine, parse_config, run_facts, used_params
from tests.metrics_store import expert_routes, known_run, write_run


def _examples(path, run, rows):
    """rows: (example, modality, source, image) tuples, written as one examples part."""
    cols = {f.name: [None] * len(rows) for f in schema.EXAMPLES}
    for i, (example, modality, source, image) in enumerate(rows):
        cols["example"][i], cols["modality"][i] = example, modality
        cols["source"][i], cols["image"][i] = source, image
    write_part(path, "examples", run, pa.table(cols, schema=schema.EXAMPLES))


@pytest.fixture
def known(tmp_path):
    return known_run(tmp_path / "store")


def test_used_params_keeps_only_the_named_ones():
    sql = "SELECT * FROM t WHERE run = $run AND site = $site_2"
    assert used_params(sql, {"run": "r", "site_2": "a", "limit": 5}) == {"run": "r", "site_2": "a"}
    assert used_params("SELECT 1", None) == {}


def test_duckdb_engine_query_and_temp_views_are_private_and_dropped():
    engine = DuckDBEngine(duckdb.connect())
    assert engine.query("SELECT $x + 1 AS y", {"x": 41, "unused": "z"}).y.tolist() == [42]
    frame = pd.DataFrame({"a": [1, 2, 3]})
    with engine.temp_view(frame) as name:
        assert engine.query(f"SELECT sum(a) AS s FROM {name}").s.tolist() == [6]
    with engine.temp_view("SELECT range AS a FROM range($n)", {"n": 4, "other": 1}) as table:
        assert engine.query(f"SELECT max(a) AS m FROM {table}").m.tolist() == [3]
    for gone in (name, table):
        with pytest.raises(duckdb.CatalogException):
            engine.query(f"SELECT * FROM {gone}")


def test_run_facts_of_a_known_run(known):
    facts = known.facts("r")
    assert facts.kinds == ["exit", "expert", "keep", "merge"]
    assert facts.tags == ["kind", "lang"]
    assert facts.layers == [0, 1, 3]  # 3: the deepest exit row's layer
    assert facts.n_layers == 4 and facts.n_experts == {"a": 4, "b": 4}
    assert facts.n_routes == 9 + 10 + 10 + 3 + 10 and facts.n_examples == 1
    assert facts.has_tokens and not facts.has_embeddings
    assert facts.config == {"n_experts": 4, "n_layers": 4}
    assert facts.sites_of("expert").to_dict("list") == {"site": ["a", "b"], "layer": [0, 1],
                                                        "n_rows": [9, 10]}
    assert facts.sites_of(("keep", "merge")).site.tolist() == ["merge", "prune"]
    assert not facts.sites.per_example.any()


def test_facts_without_config_count_experts_and_layers_seen(tmp_path):
    routes = expert_routes("g", 2, {(0, 0): [5, 1]}) + [(3, -1, 0, "*", "exit", 6, 0, 0.5)]
    store = write_run(tmp_path / "s", "q", routes, config=None)
    facts = run_facts(store.engine, "q")
    assert facts.n_experts == {"g": 6}  # 1 + the largest expert id seen
    assert facts.n_layers == 7  # 1 + the exit layer recorded, deeper than any site
    assert facts.sites.set_index("site").per_example.to_dict() == {"*": True, "g": False}
    assert facts.n_examples == 2 and facts.tags == [] and facts.modality == "text"


def test_facts_are_cached_until_forgotten_and_unknown_runs_listed(known):
    first = known.facts("r")
    assert known.facts("r") is first
    known.forget_facts()
    again = known.facts("r")  # (RunFacts holds a DataFrame: == on two of them raises)
    assert again is not first and (again.kinds, again.n_routes) == (first.kinds, first.n_routes)
    with pytest.raises(RoutevizError, match="unknown run 'nope'; available: r"):
        known.facts("nope")


def test_example_frames_with_and_without_an_examples_table(tmp_path, known):
    assert known.example_info("r", 0) == {}  # no examples rows in this store
    assert known.first_example("r") == 0
    assert known.input_counts("r") == {"n_examples": 0, "n_sources": 0, "n_tokens": 10}
    path = tmp_path / "other"
    write_run(path, "e", expert_routes("a", 0, {(1, 0): [0], (2, 0): [1]}))
    _examples(path, "e", [(1, "text", "a.txt", None), (2, "image", None, b"\x89PNG"),
                          (3, "text", "a.txt", None)])
    store = open_store(path)
    info = store.example_info("e", 2)
    assert info["modality"] == "image" and info["source"] is None and info["label"] is None
    assert store.example_list("e", limit=2).to_dict("list") == {
        "example": [1, 2], "source": ["a.txt", ""], "modality": ["text", "image"]}
    assert store.example_images("e", [1, 2]).example.tolist() == [2]
    assert store.example_images("e", []).empty
    assert store.example_sources("e", [1, 2, 3]) == {1: "a.txt", 3: "a.txt"}
    assert store.first_example("e") is None  # no tokens recorded
    assert store.input_counts("e") == {"n_examples": 3, "n_sources": 1, "n_tokens": 0}


def test_tag_value_experts_counts_units_and_spreads_example_tags(known):
    # kw tokens are 0 ('def') and 6 ('return'): experts 0 and 1 at site a
    assert known.tag_value_experts("r", "a", "kind", "kw").to_dict("list") == {
        "expert": [0, 1], "count": [1, 1], "n_tag": [2, 2]}
    # lang=py is an example-level tag: every routed token of site a carries it
    assert known.tag_value_experts("r", "a", "lang", "py").to_dict("list") == {
        "expert": [0, 1], "count": [6, 3], "n_tag": [9, 9]}
    assert known.tag_value_experts("r", "a", "lang", "rust").empty


def test_token_experts_search_is_case_insensitive_and_literal(known):
    # 'x' at tokens 1 and 7 of site b: expert 1 % 2 + 2 = 3 and 7 % 2 + 2 = 3
    assert known.token_experts("r", "b", "X").to_dict("list") == {
        "text": ["x"], "expert": [3], "count": [2], "n_text": [2]}
    assert known.token_experts("r", "b", "%").empty  # no LIKE wildcards
    assert known.tag_values("r").to_dict("list") == {
        "name": ["kind", "kind", "lang"], "value": ["kw", "other", "py"], "n": [2, 8, 1]}


def test_parse_config_reads_only_json_objects():
    assert parse_config('{"a": 1}') == {"a": 1}
    for text in (None, "", "not json", "[1, 2]", "3"):
        assert parse_config(text) == {}
