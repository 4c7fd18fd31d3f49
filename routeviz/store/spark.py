"""Read a store with Spark and run routeviz's analyses there (`pip install routeviz[spark]`).

    from pyspark.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").getOrCreate()   # or a cluster
    store = routeviz.store.spark.open_store(spark, "s3a://bucket/routes")
    routeviz.metrics.focus_cover(store, "mixtral-code")             # same numbers as DuckDB

`SparkStore` offers the read side of `routeviz.store.Store` that the analyses use
(`engine`, `facts`, `query_df`, `run_names`, `require_run`, `config`): temp views with the
same names and columns, and a `SparkEngine` (the `routeviz.query.Engine` interface) that
translates routeviz's DuckDB SQL to Spark SQL with sqlglot and binds `$name` parameters as
Spark named parameters. tests/test_spark.py keeps the two engines in step. Small results
come back as pandas frames; the route rows stay in Spark.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from routeviz.errors import RoutevizError, choose
from routeviz.store import schema
from routeviz.store.query import RunQueries, used_params, view_name


def _ordered_list_to_spark(node: exp.Expression) -> exp.Expression:
    """list(x ORDER BY k, ...) -> transform(array_sort(collect_list(struct(k.., x))), s -> s.v):
    Spark's collect_list keeps no order, so sort (key, value) structs and keep the values."""
    if not (isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order)):
        return node
    keys = node.this.expressions
    if any(k.args.get("desc") for k in keys):
        raise RoutevizError("list(... ORDER BY ... DESC) has no Spark translation here")
    fields = ", ".join(f"'k{i}', {k.this.sql('spark')}" for i, k in enumerate(keys))
    value = node.this.this.sql("spark")
    return sqlglot.parse_one(
        f"TRANSFORM(ARRAY_SORT(COLLECT_LIST(NAMED_STRUCT({fields}, 'v', {value}))), "
        "s -> s.v)", read="spark")


@lru_cache(maxsize=512)
def spark_sql(query: str) -> str:
    """routeviz's DuckDB SQL in Spark's dialect, translated by sqlglot ($name -> :name)."""
    tree = sqlglot.parse_one(query, read="duckdb")
    for cte in tree.find_all(exp.CTE):  # MATERIALIZED hints: Spark plans CTEs itself
        cte.set("materialized", None)
    tree = tree.transform(_ordered_list_to_spark)
    return tree.sql(dialect="spark")


def _spark_type(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _spark_type(t.value_type)
    if pa.types.is_list(t):
        return f"array<{_spark_type(t.value_type)}>"
    names = {pa.int64(): "bigint", pa.int32(): "int", pa.int16(): "smallint", pa.int8(): "tinyint",
             pa.float32(): "float", pa.float16(): "float", pa.float64(): "double",
             pa.string(): "string", pa.binary(): "binary", pa.bool_(): "boolean"}
    if pa.types.is_timestamp(t):
        return "timestamp"
    return names[t]


def spark_ddl(arrow_schema: pa.Schema) -> str:
    """A Spark DDL schema string for a routeviz table, with the `run` partition column."""
    fields = [f"`{f.name}` {_spark_type(f.type)}" for f in arrow_schema]
    return ", ".join(fields + ["`run` string"])


class SparkEngine:
    """The `routeviz.query.Engine` on a SparkSession: DuckDB SQL translated by sqlglot."""

    dialect = "spark"

    def __init__(self, spark):
        self.spark = spark

    def frame(self, sql: str, params=None):
        """A Spark DataFrame for routeviz's DuckDB-dialect SQL."""
        return self.spark.sql(spark_sql(sql), args=used_params(sql, params) or None)

    def query(self, sql: str, params=None) -> pd.DataFrame:
        frame = self.frame(sql, params)
        # DECIMAL results (Spark keeps `x * 1.0 / n` exact) become float64, as DuckDB's do
        decimals = [f.name for f in frame.schema.fields if f.dataType.typeName() == "decimal"]
        return frame.toPandas().astype({name: "float64" for name in decimals})

    @contextmanager
    def temp_view(self, source, params=None):
        name = view_name()
        if isinstance(source, pd.DataFrame):
            frame = self.spark.createDataFrame(source if len(source) else None,
                                               schema=_frame_ddl(source))
        else:
            frame = self.frame(source, params).cache()
        frame.createOrReplaceTempView(name)
        try:
            yield name
        finally:
            self.spark.catalog.dropTempView(name)
            frame.unpersist()


def _frame_ddl(frame: pd.DataFrame) -> str:
    """A Spark DDL for a small pandas frame of strings, integers, floats and booleans."""
    def kind(dtype) -> str:
        if pd.api.types.is_bool_dtype(dtype):
            return "boolean"
        if pd.api.types.is_integer_dtype(dtype):
            return "bigint"
        if pd.api.types.is_float_dtype(dtype):
            return "double"
        return "string"
    return ", ".join(f"`{c}` {kind(t)}" for c, t in frame.dtypes.items())


class SparkStore(RunQueries):
    def __init__(self, spark, path: str):
        self.spark = spark
        self.path = str(path).rstrip("/")
        self.engine = SparkEngine(spark)
        self.unreadable: dict[str, str] = {}  # table -> why its view is empty on Spark
        # run=001 must stay the string "001", not become the integer 1
        spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        self.refresh()

    def refresh(self) -> None:
        self.forget_facts()
        for table, arrow_schema in schema.TABLES.items():
            frame = self._read(table, arrow_schema)
            frame.createOrReplaceTempView(table)

    def _read(self, table: str, arrow_schema: pa.Schema):
        ddl = spark_ddl(arrow_schema)
        try:
            # files whose names start with "." (being written, staged overwrites) are skipped
            frame = self.spark.read.option("mergeSchema", "true").parquet(f"{self.path}/{table}")
        except Exception as exc:
            if "FLOAT16" in str(exc):  # Spark 4 cannot read Parquet's FLOAT16 type
                if table == "routes":
                    raise RoutevizError(
                        "this store has route weights in float16 (weight_dtype='float16'), "
                        "which Spark cannot read; trace with float32 weights for Spark") from exc
                self.unreadable[table] = "float16 values (Spark cannot read Parquet FLOAT16)"
            elif "PATH_NOT_FOUND" not in str(exc) and "does not exist" not in str(exc):
                raise
            return self.spark.createDataFrame([], ddl)  # an empty view of the right shape
        wanted = [f.name for f in arrow_schema] + ["run"]
        cols = [c if c in frame.columns else f"CAST(NULL AS {_spark_type(arrow_schema.field(c).type)}) AS {c}"
                for c in wanted]
        return frame.selectExpr(*cols)

    def sql(self, query: str, params=None):
        """A Spark DataFrame for routeviz-dialect SQL over the views."""
        return self.engine.frame(query, params)

    def query_df(self, query: str, params=None):
        return self.engine.query(query, params)

    def run_names(self) -> list[str]:
        rows = self.spark.sql("SELECT DISTINCT run FROM runs UNION SELECT DISTINCT run FROM routes")
        return sorted(r[0] for r in rows.collect())

    def require_run(self, run: str) -> str:
        return choose("run", run, self.run_names())

    def config(self, run: str) -> dict:
        return dict(self.facts(run).config)

    def close(self) -> None:
        pass


def open_store(spark, path) -> SparkStore:
    """A store (local directory, or an s3a:// / hdfs:// / gs:// URI Spark can read) on Spark."""
    if spark is None:
        raise RoutevizError("open_store needs a SparkSession")
    return SparkStore(spark, path)
