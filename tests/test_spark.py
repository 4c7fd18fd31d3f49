"""The analyses read a store with PySpark (local mode) and get DuckDB's numbers.

Skipped when pyspark or Java is missing; `make test` installs the `spark` extra.
"""

import shutil

import pandas as pd
import pytest
import torch

import routeviz
from routeviz import metrics
from tests.toy import ToyMoE, register_toy

pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java", allow_module_level=True)

RUN = "001"  # numeric-looking: Spark must keep it the string "001"


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("routeviz-test")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "1")
               .config("spark.default.parallelism", "1")
               .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    register_toy()
    path = tmp_path_factory.mktemp("spark") / "store"
    torch.manual_seed(0)
    model = ToyMoE(layers=2, k=2)
    for run, n in ((RUN, 3), ("other", 1)):  # a second run the analyses must leave out
        with routeviz.trace(model, path, run, config={"n_experts": 4}) as tracer:
            for _ in range(n):
                ids = torch.randint(0, 7, (4, 6))  # experts 0-3 from ids 0-6: all used
                tags = [{"parity": ["even" if int(x) % 2 == 0 else "odd" for x in row],
                         "group": f"g{j % 2}"} for j, row in enumerate(ids)]
                with tracer.batch(tokens=[[str(int(x)) for x in row] for row in ids],
                                  tags=tags):
                    model(ids)
    return path


def same(a: pd.DataFrame, b: pd.DataFrame, keys):
    a = a.sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-9)


def test_spark_gets_duckdbs_focus_cover_and_load(spark, store_path):
    import routeviz.spark

    on_spark = routeviz.spark.open_store(spark, store_path)
    on_duckdb = routeviz.open_store(store_path)
    assert on_spark.run_names() == on_duckdb.run_names() == ["001", "other"]

    fc_spark = metrics.focus_cover(on_spark, RUN).scores
    fc_duckdb = metrics.focus_cover(on_duckdb, RUN).scores
    assert len(fc_duckdb) == 9 and fc_duckdb.focus.between(0.01, 0.99).all()
    same(fc_spark, fc_duckdb, ["site", "tag"])

    load_spark, load_duckdb = metrics.load(on_spark, RUN), metrics.load(on_duckdb, RUN)
    assert load_duckdb.experts["count"].sum() == 3 * 4 * 6 * 2 * 2  # batches*b*s*layers*k
    same(load_spark.experts, load_duckdb.experts, ["site", "expert"])
    columns = ["site", "layer", "n_experts", "n_tokens", "n_assignments", "cv", "max_over_mean"]
    same(load_spark.sites[columns], load_duckdb.sites[columns], ["site"])


def test_duckdb_dialect_becomes_spark_sql():
    from routeviz.spark import spark_sql

    query = ("WITH a AS MATERIALIZED (SELECT * FROM tags WHERE run = $run AND "
             "list_contains($names, name)) SELECT count(*) FROM a")
    assert spark_sql(query) == ("WITH a AS (SELECT * FROM tags WHERE run = :run AND "
                                "array_contains(:names, name)) SELECT count(*) FROM a")


def test_duckdb_unnests_run_on_spark(spark):
    from routeviz.spark import spark_sql

    rows = spark.sql(spark_sql("SELECT unnest($a) AS name, unnest($b) AS tid"),
                     args={"a": ["x", "y"], "b": [7, 8]}).collect()
    assert [tuple(r) for r in rows] == [("x", 7), ("y", 8)]
    query = "SELECT n, unnest(range(n)) AS pos FROM VALUES (0), (3) AS t(n)"
    assert [tuple(r) for r in spark.sql(spark_sql(query)).collect()] == [(3, 0), (3, 1), (3, 2)]
