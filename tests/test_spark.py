"""Every analysis reads a store with PySpark (local mode) and gets DuckDB's numbers.

One SparkSession and one small hand-built store per module. Skipped when pyspark or Java
is missing; `make test` installs the `spark` extra.
"""

import shutil

import numpy as np
import pandas as pd
import pytest

from routeviz import metrics
from tests.metrics_store import expert_routes, write_run

pytestmark = pytest.mark.slow  # a local Spark session (JVM) per module: minutes

pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java", allow_module_level=True)

RUN, OTHER = "001", "other"  # "001" is numeric-looking: Spark must keep it the string "001"
N_EXAMPLES, N_TOKENS = 3, 6
TEXT = ["def", "x", "(", "y", ")", ":"]


def _routes(shift: int):
    """Two top-2 expert sites (4 experts), a keep site, merges, per-token exits and an
    image-style per-example exit; `shift` changes some choices (the diff's second run)."""
    rng = np.random.default_rng(shift)
    routes = []
    for site, layer in (("moe.0", 0), ("moe.1", 2)):
        picks = {}
        for e in range(N_EXAMPLES):
            for t in range(N_TOKENS):
                first = int(rng.integers(0, 4))
                picks[(e, t)] = [first, (first + 1 + int(rng.integers(0, 3))) % 4]
        weights = {k: [0.7, 0.3] for k in picks}
        routes += expert_routes(site, layer, picks, weights)
    for e in range(N_EXAMPLES):
        for t in range(N_TOKENS):
            routes.append((e, t, 1, "prune", "keep", int((t + e + shift) % 3 != 0), 0, 0.5))
            routes.append((e, t, 3, "head", "exit", 1 + (t + e + shift) % 3, 0, 0.9))
        routes.append((e, 4, 1, "merge", "merge", 2, 0, 0.8))
        routes.append((e, -1, 3, "cls", "exit", (e + shift) % 2 + 2, 0, 0.6))
    return routes


def _tags():
    tags = [(e, t, "kind", "kw" if TEXT[t] == "def" else ("punct" if t in (2, 4, 5) else "name"))
            for e in range(N_EXAMPLES) for t in range(N_TOKENS)]
    return tags + [(e, -1, "group", f"g{e % 2}") for e in range(N_EXAMPLES)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from pyspark.sql import SparkSession

    import routeviz.store.spark

    path = tmp_path_factory.mktemp("spark") / "store"
    tokens = {e: TEXT for e in range(N_EXAMPLES)}
    config = {"n_experts": 4, "n_layers": 4}
    write_run(path, RUN, _routes(0), tags=_tags(), tokens=tokens, config=config)
    write_run(path, OTHER, _routes(1), tags=_tags(), tokens=tokens, config=config)
    for step in (0, 1):  # a training series of two checkpoints
        write_run(path, f"s-{step}", _routes(step + 2), tags=_tags(), tokens=tokens,
                  config={**config, "series": "s", "step": step * 100})
    session = (SparkSession.builder.master("local[2]").appName("routeviz-test")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield routeviz.store.spark.open_store(session, path), routeviz.open_store(path)
    session.stop()


def same(a: pd.DataFrame, b: pd.DataFrame, keys):
    assert len(a) == len(b) and len(b) > 0
    a = a.sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-9)


def test_same_runs_and_facts(stores):
    on_spark, on_duckdb = stores
    assert on_spark.run_names() == on_duckdb.run_names() == [RUN, OTHER, "s-0", "s-1"]
    a, b = on_spark.facts(RUN), on_duckdb.facts(RUN)
    assert a.kinds == b.kinds == ["exit", "expert", "keep", "merge"]
    assert a.tags == b.tags == ["group", "kind"]
    assert a.n_experts == b.n_experts == {"moe.0": 4, "moe.1": 4}
    assert a.n_layers == b.n_layers == 4 and a.n_examples == b.n_examples == N_EXAMPLES
    same(a.sites, b.sites, ["site", "kind"])


@pytest.mark.parametrize("kind", ["expert", "keep", "exit"])
def test_focus_cover(stores, kind):
    on_spark, on_duckdb = stores
    duck = metrics.focus_cover(on_duckdb, RUN, kind=kind)
    assert duck.scores.focus.between(0.01, 1.0).all()
    same(metrics.focus_cover(on_spark, RUN, kind=kind).scores, duck.scores, ["site", "tag"])


def test_load_and_keep(stores):
    on_spark, on_duckdb = stores
    a, b = metrics.load(on_spark, RUN), metrics.load(on_duckdb, RUN)
    assert b.experts["count"].sum() == 2 * N_EXAMPLES * N_TOKENS * 2  # sites * tokens * k
    same(a.experts, b.experts, ["site", "expert"])
    same(a.sites, b.sites, ["site"])
    a, b = metrics.keep(on_spark, RUN), metrics.keep(on_duckdb, RUN)
    same(a.sites, b.sites, ["site"])
    same(a.tokens, b.tokens, ["n_tokens"])
    same(a.merges, b.merges, ["site", "group_size"])


def test_exits(stores):
    a, b = (metrics.exits(s, RUN) for s in stores)
    same(a.per_token, b.per_token, ["layer"])
    same(a.per_example, b.per_example, ["layer"])
    assert (a.n_layers, a.unit) == (b.n_layers, b.unit) == (4, "token")
    assert a.mean_exit_layer == pytest.approx(b.mean_exit_layer) and b.compute_saved > 0
    assert a.compute_saved == pytest.approx(b.compute_saved)


def test_entropy(stores):
    a, b = (metrics.entropy(s, RUN) for s in stores)
    same(a.sites, b.sites, ["site", "source"])
    same(a.tokens, b.tokens, ["site", "example", "token", "source"])
    assert b.sites["mean"].iloc[0] == pytest.approx(-(0.7 * np.log(0.7) + 0.3 * np.log(0.3)))


def test_paths(stores):
    a, b = (metrics.paths(s, RUN) for s in stores)
    same(a.transitions, b.transitions, ["from_site", "from_expert", "to_expert"])
    assert a.n_tokens == b.n_tokens == N_EXAMPLES * N_TOKENS
    pd.testing.assert_frame_equal(a.top_paths, b.top_paths, check_dtype=False)


def test_expert_profiles(stores):
    a, b = (metrics.expert_profiles(s, RUN, min_count=1) for s in stores)
    for part, keys in (("tags", ["site", "expert", "name", "value"]),
                       ("tokens", ["site", "expert", "text"]),
                       ("examples", ["site", "expert", "example", "token"])):
        same(getattr(a, part), getattr(b, part), keys)


def test_diff(stores):
    a, b = (metrics.diff(s, RUN, OTHER) for s in stores)
    expert = next(row for row in b["overall"] if row["kind"] == "expert")
    assert b["n_common_units"] > 0 and 0 < expert["top1_agreement"] < 1
    assert a.keys() == b.keys()
    for key in ("sites", "overall", "changed_tokens"):
        same(pd.DataFrame(a[key]), pd.DataFrame(b[key]), list(pd.DataFrame(b[key]).columns[:3]))
    for key in ("n_common_units", "n_only_run", "n_only_against", "n_text_mismatch", "notes"):
        assert a[key] == b[key]


def test_duckdb_dialect_becomes_spark_sql():
    from routeviz.store.spark import spark_sql

    query = ("WITH a AS MATERIALIZED (SELECT * FROM tags WHERE run = $run AND "
             "list_contains($names, name)) SELECT count(*) FROM a")
    assert spark_sql(query) == ("WITH a AS (SELECT * FROM tags WHERE run = :run AND "
                                "ARRAY_CONTAINS(:names, name)) SELECT COUNT(*) FROM a")


def test_ordered_lists_and_ranges_run_on_spark(stores):
    on_spark, _ = stores
    engine = on_spark.engine
    rows = engine.query("SELECT u, list(c ORDER BY i) AS path FROM VALUES (1, 2, 9), (1, 0, 8), "
                        "(1, 1, 7) AS t(u, i, c) GROUP BY u")
    assert list(rows.path.iloc[0]) == [8, 7, 9]
    rows = engine.query("SELECT n, unnest(range(n)) AS pos FROM VALUES (0), (3) AS t(n)")
    assert rows.values.tolist() == [[3, 0], [3, 1], [3, 2]]


def close(a, b, path="result"):
    """a equals b, floats to 1e-9 relative, through nested dicts and lists."""
    if isinstance(b, pd.DataFrame):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                      check_dtype=False, check_exact=False, rtol=1e-9)
    elif isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), path
        for key in b:
            close(a[key], b[key], f"{path}.{key}")
    elif isinstance(b, (list, tuple)):
        assert isinstance(a, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{i}]")
    elif b is None or a is None:  # a missing value: None from one engine, NaN from the other
        assert pd.isna(a) and pd.isna(b), path
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


def test_metrics_json_with_chance_metrics(stores):
    """`routeviz metrics --json`: Focus/Cover with permutation baseline and ci, load, keep,
    exits, coactivation, vocab_specialization, consecutive, confidence."""
    a, b = (metrics.summary(s, RUN, permutations=20, resamples=20, seed=3) for s in stores)
    for key in ("coactivation", "vocab_specialization", "consecutive", "confidence"):
        assert b.get(key) not in (None, [], {}), key
    assert all("baseline" in row for row in b["focus_cover"])
    close(a, b)


def test_new_metric_frames(stores):
    on_spark, on_duckdb = stores
    a, b = (metrics.coactivation(s, RUN) for s in stores)
    for part in a.__dataclass_fields__:
        x, y = getattr(a, part), getattr(b, part)
        if isinstance(y, pd.DataFrame):
            same(x, y, list(y.columns[:4]))
    same(metrics.consecutive(on_spark, RUN), metrics.consecutive(on_duckdb, RUN), ["site"])
    a, b = (metrics.vocab_specialization(s, RUN, min_count=1) for s in stores)
    for part in a.__dataclass_fields__:
        x, y = getattr(a, part), getattr(b, part)
        if isinstance(y, pd.DataFrame):
            same(x, y, list(y.columns[:3]))
    close(metrics.confidence(on_spark, RUN), metrics.confidence(on_duckdb, RUN))


def test_series(stores):
    """What a series adds on Spark: the Timeline's per-step metrics (saturation, balance,
    Focus/Cover with its permutation band, entropy) and expert identity across steps. Each
    step's full `summary`, which `metrics --series --json` adds, is
    test_metrics_json_with_chance_metrics' (series_summary ran it again per step: 70 s)."""
    from routeviz.metrics.identity import identity
    from routeviz.metrics.series import series_runs, timeline

    on_spark, on_duckdb = stores
    assert series_runs(on_spark, "s").run.tolist() == ["s-0", "s-1"]
    a, b = (timeline(s, "s", chance=3) for s in stores)
    assert {"saturation_top1", "load_cv", "focus", "focus_lo", "cover_hi", "entropy"} <= set(b.metric)
    same(a, b, ["step", "site", "metric"])
    a, b = identity(on_spark, "s"), identity(on_duckdb, "s")
    assert list(b.to_step.unique()) == [100]
    same(a, b, ["site", "expert"])


def test_tag_and_token_queries(stores):
    """The query layer's tag and token-search questions (Experts, Specialization pages)."""
    a, b = stores
    same(a.tag_values(RUN), b.tag_values(RUN), ["name", "value"])
    same(a.tag_family_stats(RUN), b.tag_family_stats(RUN), ["name"])
    same(a.tag_value_experts(RUN, "moe.0", "group", "g0"),
         b.tag_value_experts(RUN, "moe.0", "group", "g0"), ["expert"])
    found = a.token_experts(RUN, "moe.1", "D")
    same(found, b.token_experts(RUN, "moe.1", "D"), ["text", "expert"])
    assert set(found.text) == {"def"} and found["count"].sum() == 2 * N_EXAMPLES  # top-2
