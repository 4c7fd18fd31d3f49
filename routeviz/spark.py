"""Read a store with Spark and run routeviz's analyses there (`pip install routeviz[spark]`).

    from pyspark.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").getOrCreate()   # or a cluster
    store = routeviz.spark.open_store(spark, "s3a://bucket/routes")
    routeviz.metrics.focus_cover(store, "mixtral-code")             # same numbers as DuckDB

`SparkStore` offers the read side of `routeviz.store.Store` that the analyses use (`con`,
`query_df`, `run_names`, `require_run`, `config`): temp views with the same names and
columns, and a `con.execute` that runs routeviz's SQL on Spark after translating the few
DuckDB spellings it uses ($name parameters, MATERIALIZED CTEs, list_contains, unnest of
parameter lists and of range(n)). tests/test_spark.py keeps the two engines in step.
Small results come back as pandas frames; the route rows stay in Spark.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa

from routeviz import schema
from routeviz.errors import RoutevizError, choose

_NAMED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_DUCKDB_TO_SPARK = (
    # CTE materialisation hints: Spark plans CTEs itself
    (re.compile(r"\bAS\s+(?:NOT\s+)?MATERIALIZED\s*\(", re.IGNORECASE), "AS ("),
    (re.compile(r"\blist_contains\s*\(", re.IGNORECASE), "array_contains("),
    # unnest(range(n)) -> 0 .. n-1 (sequence(0, -1) would count down, so slice instead)
    (re.compile(r"\bunnest\(range\(([^()]+)\)\)", re.IGNORECASE),
     r"explode(slice(sequence(0, \1), 1, \1))"),
)
# SELECT unnest($a) AS x, unnest($b) AS y ...: DuckDB unnests lists side by side; Spark
# allows one generator per SELECT, so zip them into structs and inline those.
_PARALLEL_UNNEST = re.compile(
    r"SELECT\s+((?:unnest\(\$\w+\)\s+AS\s+\w+\s*,\s*)+unnest\(\$\w+\)\s+AS\s+\w+)",
    re.IGNORECASE)
_UNNEST_ITEM = re.compile(r"unnest\(\$(\w+)\)\s+AS\s+(\w+)", re.IGNORECASE)


def _zip_unnests(match: re.Match) -> str:
    items = _UNNEST_ITEM.findall(match.group(1))  # [(param, alias)]
    first = f":{items[0][0]}"
    fields = ", ".join(f"'{alias}', element_at(:{param}, i + 1)" for param, alias in items)
    return (f"SELECT inline(transform(slice(sequence(0, size({first})), 1, size({first})), "
            f"i -> named_struct({fields})))")


def spark_sql(query: str) -> str:
    """routeviz's DuckDB SQL in Spark's dialect ($name -> :name; see the module docstring)."""
    query = _PARALLEL_UNNEST.sub(_zip_unnests, query)
    query = _NAMED.sub(r":\1", query)
    for pattern, replacement in _DUCKDB_TO_SPARK:
        query = pattern.sub(replacement, query)
    return query


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


class _Result:
    def __init__(self, frame):
        self._frame = frame

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self._frame.collect()]

    def fetchone(self):
        rows = self._frame.take(1)
        return tuple(rows[0]) if rows else None

    def df(self):
        return self._frame.toPandas()


class _SparkConnection:
    """Just enough of a DuckDB connection: execute(query, params) -> fetchone/fetchall/df."""

    def __init__(self, spark):
        self.spark = spark

    def execute(self, query: str, params=None) -> _Result:
        args = params if params else None
        if isinstance(args, dict):
            args = {k: v for k, v in args.items()}
        return _Result(self.spark.sql(spark_sql(query), args=args))

    def sql(self, query: str, params=None):
        return self.spark.sql(spark_sql(query), args=params or None)


class SparkStore:
    def __init__(self, spark, path: str):
        self.spark = spark
        self.path = str(path).rstrip("/")
        self.con = _SparkConnection(spark)
        self.unreadable: dict[str, str] = {}  # table -> why its view is empty on Spark
        # run=001 must stay the string "001", not become the integer 1
        spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        self.refresh()

    def refresh(self) -> None:
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
        return self.con.sql(query, params)

    def query_df(self, query: str, params=None):
        return self.con.execute(query, params).df()

    def run_names(self) -> list[str]:
        rows = self.spark.sql("SELECT DISTINCT run FROM runs UNION SELECT DISTINCT run FROM routes")
        return sorted(r[0] for r in rows.collect())

    def require_run(self, run: str) -> str:
        return choose("run", run, self.run_names())

    def config(self, run: str) -> dict:
        self.require_run(run)
        row = self.con.execute("SELECT config FROM runs WHERE run = ?", [run]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def close(self) -> None:
        pass


def open_store(spark, path) -> SparkStore:
    """A store (local directory, or an s3a:// / hdfs:// / gs:// URI Spark can read) on Spark."""
    if spark is None:
        raise RoutevizError("open_store needs a SparkSession")
    return SparkStore(spark, path)
