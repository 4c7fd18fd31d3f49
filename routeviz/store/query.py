"""The query layer: one SQL-execution interface for every back end, and the facts of a run.

An `Engine` runs routeviz's SQL, written once in DuckDB's dialect, on one back end:

    engine.dialect                         "duckdb" or "spark"
    engine.query(sql, params) -> DataFrame  sql uses named parameters `$name`; params is a
                                            dict (extra keys are ignored); values are str,
                                            int, float, bool, None or lists of those
    with engine.temp_view(source, params) as name:
        ...                                 a private view `name` of `source` until the
                                            block ends: a pandas DataFrame (registered), or
                                            a SQL query computed once (DuckDB: a temp table;
                                            Spark: a cached temp view) — never CREATE TEMP
                                            TABLE in an analysis, ask for a temp view

`DuckDBEngine` (here) runs the SQL as written; `routeviz.spark.SparkEngine` translates it
with sqlglot (DuckDB -> Spark SQL) and binds the parameters as Spark named parameters.
Stores (`routeviz.store.Store`, `routeviz.spark.SparkStore`) carry one as `store.engine`
and answer `store.facts(run)`: what a run recorded, computed once per store refresh.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Protocol

import pandas as pd

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class Engine(Protocol):
    dialect: str

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> pd.DataFrame: ...

    def temp_view(self, source, params: Mapping[str, object] | None = None
                  ) -> Iterator[str]: ...


def used_params(sql: str, params: Mapping[str, object] | None) -> dict:
    """The named parameters `sql` uses (DuckDB and Spark both refuse unused ones)."""
    used = set(_PARAM.findall(sql))
    return {k: v for k, v in (params or {}).items() if k in used}


def view_name(prefix: str = "rv") -> str:
    return f"_{prefix}_{uuid.uuid4().hex}"


class DuckDBEngine:
    """The Engine over a DuckDB connection whose views are the store's tables."""

    dialect = "duckdb"

    def __init__(self, con):
        self.con = con

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, used_params(sql, params)).df()

    @contextmanager
    def temp_view(self, source, params: Mapping[str, object] | None = None) -> Iterator[str]:
        name = view_name()
        if isinstance(source, pd.DataFrame):
            self.con.register(name, source)
            try:
                yield name
            finally:
                self.con.unregister(name)
            return
        self.con.execute(f"CREATE TEMP TABLE {name} AS {source}", used_params(source, params))
        try:
            yield name
        finally:
            self.con.execute(f"DROP TABLE IF EXISTS {name}")


# -- facts -------------------------------------------------------------------------------
class RunQueries:
    """The questions pages, figures and reports ask a store, for any store with `engine`
    and `require_run` (DuckDB's Store, Spark's SparkStore): `facts(run)`, cached until
    `forget_facts()` (the store calls it when it refreshes its views), and small frames."""

    def facts(self, run: str) -> RunFacts:
        """What `run` recorded (kinds, sites, tags, modality, layers, experts per site,
        n_examples, config), computed once per store refresh."""
        cache = self.__dict__.setdefault("_facts", {})
        if run not in cache:  # a cached run was there at the last refresh, which empties it
            self.require_run(run)
            cache[run] = run_facts(self.engine, run)
        return cache[run]

    def facts_many(self, runs) -> dict:
        """{run: facts(run)} for several runs (a series), the ones not cached yet computed
        together: the same few GROUP BYs, each grouped by run as well."""
        runs = [self.require_run(run) for run in runs]
        cache = self.__dict__.setdefault("_facts", {})
        missing = [run for run in dict.fromkeys(runs) if run not in cache]
        if len(missing) == 1:
            cache[missing[0]] = run_facts(self.engine, missing[0])
        elif missing:
            cache.update(run_facts_many(self.engine, missing))
        return {run: cache[run] for run in runs}

    def forget_facts(self) -> None:
        self.__dict__["_facts"] = {}
        self.__dict__["_memo"] = {}

    def memo(self, key, compute):
        """compute(), once per store refresh (as facts) for `key`: a small result several
        analyses of one command share (e.g. load's and confidence's expected tokens)."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def example_routes(self, run: str, example: int) -> pd.DataFrame:
        """Every route row of one example, ordered by layer, site, token, rank."""
        return self.engine.query(
            "SELECT example, token, layer, site, kind, choice, rank, weight FROM routes "
            "WHERE run = $run AND example = $example ORDER BY layer, site, token, rank",
            {"run": run, "example": int(example)})

    def example_tokens(self, run: str, example: int) -> list[str]:
        df = self.engine.query("SELECT token, text FROM tokens WHERE run = $run AND "
                               "example = $example ORDER BY token",
                               {"run": run, "example": int(example)})
        return df["text"].astype(str).tolist()

    def example_info(self, run: str, example: int) -> dict:
        """The examples row of one example as a dict (image bytes included; {} if none)."""
        df = self.engine.query("SELECT * FROM examples WHERE run = $run AND example = $example",
                               {"run": run, "example": int(example)})
        if df.empty:
            return {}
        return {k: (None if _is_missing(v) else v) for k, v in df.iloc[0].to_dict().items()}

    def example_list(self, run: str, limit: int = 1000) -> pd.DataFrame:
        """example, source ('' when none), modality: the first `limit` examples."""
        return self.engine.query(
            "SELECT example, coalesce(source, '') AS source, modality FROM examples "
            "WHERE run = $run ORDER BY example LIMIT $limit", {"run": run, "limit": int(limit)})

    def example_images(self, run: str, examples) -> pd.DataFrame:
        """example, image (PNG bytes), grid_h, grid_w of the image examples among `examples`."""
        return self.engine.query(
            "SELECT example, image, grid_h, grid_w FROM examples WHERE run = $run AND "
            "image IS NOT NULL AND list_contains($examples, example)",
            {"run": run, "examples": [int(e) for e in examples] or [-1]})

    def example_sources(self, run: str, examples) -> dict:
        """example -> source (file name or text start) for those of `examples` that have one."""
        df = self.engine.query(
            "SELECT example, source FROM examples WHERE run = $run AND "
            "list_contains($examples, example)",
            {"run": run, "examples": [int(e) for e in examples] or [-1]})
        return {int(e): str(s) for e, s in zip(df.example, df.source) if isinstance(s, str)}

    def first_example(self, run: str) -> int | None:
        """The lowest example id with recorded tokens (None when the run has no tokens)."""
        df = self.engine.query("SELECT min(example) AS e FROM tokens WHERE run = $run",
                               {"run": run})
        value = df.e.iloc[0] if len(df) else None
        return None if _is_missing(value) else int(value)

    def input_counts(self, run: str) -> dict:
        """n_examples (examples rows), n_sources (distinct sources), n_tokens."""
        row = self.engine.query(
            "SELECT (SELECT count(*) FROM examples WHERE run = $run) AS n_examples, "
            "(SELECT count(DISTINCT source) FROM examples WHERE run = $run) AS n_sources, "
            "(SELECT count(*) FROM tokens WHERE run = $run AND token >= 0) AS n_tokens",
            {"run": run}).iloc[0]
        return {"n_examples": int(row.n_examples or 0), "n_sources": int(row.n_sources or 0),
                "n_tokens": int(row.n_tokens or 0)}

    # -- tags and token search (Experts, Specialization, Embeddings pages) -------------------
    def tag_values(self, run: str) -> pd.DataFrame:
        """name, value, n (tag rows) for every tag value of the run, by name then value."""
        return self.engine.query(
            "SELECT name, value, count(*) AS n FROM tags WHERE run = $run "
            "GROUP BY name, value ORDER BY name, value", {"run": run})

    def tag_family_stats(self, run: str) -> pd.DataFrame:
        """name, n_values (distinct values), n_examples (examples carrying the family),
        per_token (its values are given per token) for every tag family of the run; once
        per store refresh (`metrics --json` asks twice)."""
        return self.memo(("tag_family_stats", run), lambda: self.engine.query(
            "SELECT name, count(DISTINCT value) AS n_values, count(DISTINCT example) AS "
            "n_examples, max(token) >= 0 AS per_token FROM tags WHERE run = $run "
            "GROUP BY name ORDER BY name", {"run": run})).copy()

    def tag_value_experts(self, run: str, site: str, name: str, value: str) -> pd.DataFrame:
        """expert, count (units with tag name=value routed to the expert at `site`, any
        rank), n_tag (units with the value routed at the site): P(expert | value) =
        count / n_tag. A per-example tag (token -1) covers every token of its example."""
        return self.engine.query(
            "WITH tagged AS (SELECT DISTINCT r.example, r.token, r.choice FROM routes r "
            "  JOIN tags g ON g.run = r.run AND g.example = r.example "
            "   AND (g.token = r.token OR g.token = -1) "
            "  WHERE r.run = $run AND r.site = $site AND r.kind = 'expert' "
            "   AND g.name = $name AND g.value = $value), "
            "n AS (SELECT count(*) AS n_tag FROM (SELECT DISTINCT example, token FROM tagged) u) "
            "SELECT t.choice AS expert, count(*) AS count, any_value(n.n_tag) AS n_tag "
            "FROM tagged t, n GROUP BY t.choice ORDER BY t.choice",
            {"run": run, "site": site, "name": name, "value": value})

    def token_experts(self, run: str, site: str, search: str, limit: int = 20) -> pd.DataFrame:
        """text, expert, count, n_text (occurrences of the text) for the (at most `limit`)
        most frequent token texts containing `search` (case-insensitive, no wildcards) and
        the experts they are routed to at `site` (any rank), by text then count."""
        return self.engine.query(
            "WITH tok AS (SELECT example, token, text FROM tokens WHERE run = $run "
            "  AND instr(lower(text), lower($search)) > 0), "
            "texts AS (SELECT text, count(*) AS n_text FROM tok GROUP BY text "
            "  ORDER BY n_text DESC, text LIMIT $limit) "
            "SELECT t.text, r.choice AS expert, count(*) AS count, any_value(x.n_text) AS n_text "
            "FROM tok t JOIN texts x ON x.text = t.text JOIN routes r ON r.run = $run "
            "  AND r.example = t.example AND r.token = t.token AND r.site = $site "
            "  AND r.kind = 'expert' "
            "GROUP BY t.text, r.choice ORDER BY any_value(x.n_text) DESC, t.text, count DESC, "
            "r.choice", {"run": run, "site": site, "search": str(search), "limit": int(limit)})


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class RunFacts:
    """What one run recorded. sites: site, kind, layer, n_rows, per_example (every row of
    the site and kind is a whole-example decision), in model order (layer, then site)."""

    run: str
    kinds: list  # recorded kinds, sorted
    sites: pd.DataFrame = field(repr=False)
    tags: list = field(default_factory=list)  # tag families (tag names), sorted
    modality: str = "text"  # the most common modality of the run's examples
    layers: list = field(default_factory=list)  # layer indexes that recorded a decision
    n_layers: int = 0  # runs.config n_layers, else 1 + deepest layer or exit layer recorded
    n_experts: dict = field(default_factory=dict)  # expert site -> experts (config or seen)
    n_examples: int = 0  # examples with a route, a token or an examples row
    n_routes: int = 0
    has_tokens: bool = False  # the tokens table has rows for the run
    has_embeddings: bool = False  # the embeddings table (hidden states) has rows for the run
    config: dict = field(default_factory=dict, repr=False)

    def sites_of(self, kind=None) -> pd.DataFrame:
        """site, layer, n_rows for one kind (or a tuple of kinds, or all), model order
        (computed once per kind; a copy each call)."""
        key = kind if kind is None or isinstance(kind, str) else tuple(kind)
        cache = self.__dict__.setdefault("_sites_cache", {})  # frozen: not a field, no setattr
        if key not in cache:
            cache[key] = self._sites_of(kind)
        return cache[key].copy()

    def _sites_of(self, kind) -> pd.DataFrame:
        sites = self.sites
        if kind is not None:
            kinds = (kind,) if isinstance(kind, str) else tuple(kind)
            sites = sites[sites.kind.isin(kinds)]
        out = sites.groupby("site", sort=False).agg(layer=("layer", "min"),
                                                    n_rows=("n_rows", "sum")).reset_index()
        return out.sort_values(["layer", "site"], kind="stable").reset_index(drop=True)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["sites"] = self.sites
        return out


def parse_config(text) -> dict:
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _int_or_none(value):
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def run_facts(engine: Engine, run: str) -> RunFacts:
    """Compute a run's facts with a few small GROUP BYs (one pass over its routes)."""
    p = {"run": run}
    sites = engine.query(
        "SELECT site, kind, min(layer) AS layer, max(layer) AS max_layer, "
        "max(choice) AS max_choice, max(token) AS max_token, count(*) AS n_rows "
        "FROM routes WHERE run = $run GROUP BY site, kind", p)
    tags = engine.query("SELECT DISTINCT name FROM tags WHERE run = $run", p)
    modality = engine.query("SELECT modality, count(*) AS n FROM examples WHERE run = $run "
                            "GROUP BY modality ORDER BY n DESC, modality", p)
    counts = engine.query(
        "SELECT (SELECT count(*) FROM (SELECT example FROM routes WHERE run = $run "
        "UNION SELECT example FROM tokens WHERE run = $run "
        "UNION SELECT example FROM examples WHERE run = $run) e) AS n_examples, "
        "(SELECT count(*) FROM tokens WHERE run = $run) AS n_tokens, "
        "(SELECT count(*) FROM embeddings WHERE run = $run) AS n_embeddings, "
        "(SELECT max(config) FROM runs WHERE run = $run) AS config", p).iloc[0]
    return _facts_from(run, sites, tags, modality, counts)


def run_facts_many(engine: Engine, runs: list) -> dict:
    """{run: RunFacts} for several runs from the queries of `run_facts`, grouped by run."""
    p = {"runs": list(runs)}
    sites = engine.query(
        "SELECT run, site, kind, min(layer) AS layer, max(layer) AS max_layer, "
        "max(choice) AS max_choice, max(token) AS max_token, count(*) AS n_rows "
        "FROM routes WHERE list_contains($runs, run) GROUP BY run, site, kind", p)
    tags = engine.query("SELECT DISTINCT run, name FROM tags WHERE list_contains($runs, run)", p)
    modality = engine.query(
        "SELECT run, modality, count(*) AS n FROM examples WHERE list_contains($runs, run) "
        "GROUP BY run, modality ORDER BY run, n DESC, modality", p)
    counts = engine.query(
        "WITH r AS (SELECT unnest($runs) AS run), "
        "e AS (SELECT run, count(*) AS n_examples FROM (SELECT run, example FROM routes "
        "  WHERE list_contains($runs, run) UNION SELECT run, example FROM tokens "
        "  WHERE list_contains($runs, run) UNION SELECT run, example FROM examples "
        "  WHERE list_contains($runs, run)) GROUP BY run), "
        "t AS (SELECT run, count(*) AS n_tokens FROM tokens WHERE list_contains($runs, run) "
        "  GROUP BY run), "
        "m AS (SELECT run, count(*) AS n_embeddings FROM embeddings "
        "  WHERE list_contains($runs, run) GROUP BY run), "
        "c AS (SELECT run, max(config) AS config FROM runs WHERE list_contains($runs, run) "
        "  GROUP BY run) "
        "SELECT r.run, coalesce(e.n_examples, 0) AS n_examples, "
        "coalesce(t.n_tokens, 0) AS n_tokens, coalesce(m.n_embeddings, 0) AS n_embeddings, "
        "c.config FROM r LEFT JOIN e USING (run) LEFT JOIN t USING (run) "
        "LEFT JOIN m USING (run) LEFT JOIN c USING (run)", p)
    sites, tags, modality, counts = (split_runs(f, runs) for f in (sites, tags, modality, counts))
    return {run: _facts_from(run, sites[run], tags[run], modality[run], counts[run].iloc[0])
            for run in runs}


def split_runs(frame: pd.DataFrame, runs) -> dict:
    """{run: frame's rows of that run, without the run column, index from 0} for every run
    of `runs` (empty where it has none), in one pass."""
    keys = frame["run"].astype(str)
    rest = frame.drop(columns="run")
    parts = {str(run): part.reset_index(drop=True) for run, part in rest.groupby(keys, sort=False)}
    empty = rest.iloc[:0]
    return {run: parts.get(str(run), empty) for run in runs}


def _facts_from(run: str, sites: pd.DataFrame, tags: pd.DataFrame, modality: pd.DataFrame,
                counts) -> RunFacts:
    sites = sites.copy()
    sites["site"] = sites["site"].astype(str)
    sites["kind"] = sites["kind"].astype(str)
    sites = sites.sort_values(["layer", "site", "kind"], kind="stable").reset_index(drop=True)
    config = parse_config(counts["config"])

    declared_layers = _int_or_none(config.get("n_layers"))
    deepest = [int(v) for v in sites.max_layer]
    deepest += [int(v) for v in sites.max_choice[sites.kind == "exit"]]
    n_layers = max(declared_layers or 0, (max(deepest) + 1) if deepest else 0)

    declared = config.get("n_experts")
    n_experts = {}
    by_expert = sites.kind.isin(["expert", "soft"])  # soft: combine mass per expert
    for site, max_choice in zip(sites.site[by_expert], sites.max_choice[by_expert]):
        stated = _int_or_none(declared.get(site) if isinstance(declared, dict) else declared)
        n_experts[site] = max(stated or 0, int(max_choice) + 1)

    sites["per_example"] = sites.max_token.astype("int64") < 0
    layers = sorted({int(v) for v in sites.layer} | {int(v) for v in sites.max_layer})
    modality_name = modality["modality"].dropna()
    return RunFacts(
        run=run, kinds=sorted(set(sites.kind)),
        sites=sites[["site", "kind", "layer", "n_rows", "per_example"]].astype(
            {"layer": "int64", "n_rows": "int64"}),
        tags=sorted(str(t) for t in tags["name"].dropna()),
        modality=str(modality_name.iloc[0]) if len(modality_name) else "text",
        layers=layers, n_layers=n_layers, n_experts=n_experts,
        n_examples=int(counts["n_examples"] or 0), n_routes=int(sites.n_rows.sum()),
        has_tokens=int(counts["n_tokens"] or 0) > 0,
        has_embeddings=int(counts["n_embeddings"] or 0) > 0, config=config)
