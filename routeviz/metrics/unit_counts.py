"""The three counts behind every F1 of the alignment matrix, computed inside DuckDB:
|active_j| per subnetwork, |tag_i| per tag value and |tag_i ∧ active_j| per pair.

Units are keyed by one BIGINT (`common.unit_key`) so the big join and its GROUP BY hash
integers, not strings; tag values travel as small integer ids. Route rows are not
de-duplicated: the tracer writes one row per (site, unit, rank), and a router never picks
one expert twice for a token (a DISTINCT over 10 M rows would cost more than the rest).

unit "token": a token carries its own tags plus its example's (token = -1) tags; a
per-example route (token = -1) makes its subnetwork active for every token of the example.
Tokens of an example are positions 0..n-1, n from the tokens table / examples.n_tokens
(or 1 + the largest token routed, when neither was recorded).
unit "example": an example carries a tag, or activates a subnetwork, if it or any of its
tokens does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from routeviz.metrics import _common as common


def example_lengths_sql(store, run: str) -> str:
    """SQL (uses $run) giving (example, n): the token count of every example of `run`."""
    parts = [("SELECT example, count(*) AS n FROM tokens WHERE run = $run AND token >= 0 "
             "GROUP BY example"),
             "SELECT example, n_tokens FROM examples WHERE run = $run AND n_tokens IS NOT NULL"]
    recorded = common.memo(store, ("lengths recorded", run), lambda: common.scalar(
        store, "SELECT EXISTS (SELECT 1 FROM tokens WHERE run = $run) OR EXISTS (SELECT 1 "
        "FROM examples WHERE run = $run AND n_tokens IS NOT NULL)", {"run": run}))
    if not recorded:
        parts.append("SELECT example, max(token) + 1 FROM routes WHERE run = $run GROUP BY example")
    return ("SELECT example, max(n) AS n FROM (" + " UNION ALL ".join(parts)
            + ") GROUP BY example")


def _exists(store, table: str, where: str, params: dict) -> bool:
    """Whether `table` has a row where `where`; asked once per store refresh (every
    Focus/Cover, baseline and series step asks the same few: on Spark each is a job)."""
    key = ("exists", table, where, tuple(sorted((k, repr(v)) for k, v in params.items())))
    return common.memo(store, key, lambda: bool(common.scalar(
        store, f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {where})", params)))


def unit_counts(store, run: str, kind: str, tag_values: pd.DataFrame, unit: str,
                top1: bool = False, site: str | None = None) -> dict:
    """tag_values: name, value (row i is tag id i). Returns frames `active` (site, choice,
    n_active), `tag` (name, value, n_tag) and `both` (site, choice, name, value, n_both)."""
    with common.temp_view(store, tag_ids(tag_values)) as tv_view:
        ctes, params = unit_sets(store, run, kind, tv_view, unit, top1, site)
        parts = common.df(store, counts_sql(ctes), params)
    return split_counts(parts, tag_values)


def tag_ids(tag_values: pd.DataFrame) -> pd.DataFrame:
    """name, value, tid (= row number): the frame behind the `tv` view of `unit_sets`."""
    return pd.DataFrame({"name": tag_values.name.astype(str).to_numpy(),
                         "value": tag_values.value.astype(str).to_numpy(),
                         "tid": np.arange(len(tag_values), dtype="int64")})


# The CTEs `unit_sets` returns, by name: tv (tag id of each name/value), lengths (tokens
# per example; only where a per-example tag or route needs it), tagged (u, tid) and
# active (site, choice, u[, top]). Callers pick, drop or replace them with `ctes_named`,
# `without_ctes` and `with_cte`, not by matching the SQL.
TV, LENGTHS, TAGGED, ACTIVE = "tv", "lengths", "tagged", "active"


def cte_name(cte: str) -> str:
    """The name a CTE of `unit_sets` defines ("tagged" for "tagged AS MATERIALIZED (...)")."""
    return cte.split(" AS ", 1)[0].strip()


def cte_body(cte: str) -> str:
    """The parenthesised query a CTE of `unit_sets` defines ("(SELECT ...)")."""
    return cte[cte.index("("):]


def ctes_named(ctes, *names) -> list:
    """The CTEs of `unit_sets` with these names, in their order."""
    return [c for c in ctes if cte_name(c) in names]


def without_ctes(ctes, *names) -> list:
    """The CTEs of `unit_sets` less those with these names."""
    return [c for c in ctes if cte_name(c) not in names]


def with_cte(ctes, name: str, sql: str) -> list:
    """The CTEs of `unit_sets` with the one called `name` replaced by `name AS (sql)`."""
    return [f"{name} AS ({sql})" if cte_name(c) == name else c for c in ctes]


def counts_sql(ctes) -> str:
    """The query behind `unit_counts` over the CTEs of `unit_sets` (with `tagged` and
    `active`): rows (part "active"/"tag"/"both", site, choice, tid, n) for `split_counts`."""
    return (
        "WITH " + ", ".join(ctes) + " "
        "SELECT 'active' AS part, site, choice, NULL::INTEGER AS tid, count(*) AS n "
        "FROM active GROUP BY site, choice "
        "UNION ALL SELECT 'tag', NULL, NULL, tid, count(*) FROM tagged GROUP BY tid "
        "UNION ALL SELECT 'both', a.site, a.choice, t.tid, count(*) "
        "FROM active a JOIN tagged t USING (u) GROUP BY a.site, a.choice, t.tid")


def counts_sql_kinds(ctes_by_kind: list) -> tuple[str, list]:
    """`counts_sql` for several kinds of one run scored on the same units and tag values, in
    one query: the CTEs of `unit_sets` for each kind (each with its own `kind_param`), the
    tagged units built and joined once. Rows (part, k, site, choice, tid, n), k the kind's
    index in `ctes_by_kind` (NULL on the shared "tag" rows): `split_counts_kinds` splits
    them. Returns (sql, the CTE names it uses)."""
    first = ctes_by_kind[0]
    lengths = next((c for ctes in ctes_by_kind for c in ctes_named(ctes, LENGTHS)), None)
    shared = ctes_named(first, TV) + ([lengths] if lengths else []) + ctes_named(first, TAGGED)
    actives = [f"SELECT {k} AS k, site, choice, u FROM {cte_body(ctes_named(ctes, ACTIVE)[0])}"
               for k, ctes in enumerate(ctes_by_kind)]
    ctes = shared + ["active AS NOT MATERIALIZED (" + " UNION ALL ".join(actives) + ")"]
    return ("WITH " + ", ".join(ctes) + " "
            "SELECT 'active' AS part, k, site, choice, NULL::INTEGER AS tid, count(*) AS n "
            "FROM active GROUP BY k, site, choice "
            "UNION ALL SELECT 'tag', NULL, NULL, NULL, tid, count(*) FROM tagged GROUP BY tid "
            "UNION ALL SELECT 'both', a.k, a.site, a.choice, t.tid, count(*) "
            "FROM active a JOIN tagged t USING (u) GROUP BY a.k, a.site, a.choice, t.tid")


def split_counts_kinds(parts: pd.DataFrame, tag_values: pd.DataFrame, n_kinds: int) -> list:
    """The rows of `counts_sql_kinds` as one `split_counts` dict per kind, in its order."""
    tag = parts[parts.part == "tag"]
    k = parts.k.to_numpy(dtype="float64", na_value=np.nan)
    return [split_counts(pd.concat([parts[k == i], tag]).drop(columns="k"), tag_values)
            for i in range(n_kinds)]


def unit_counts_ranked(store, run: str, kind: str, tag_values: pd.DataFrame, unit: str,
                       site: str | None = None) -> tuple[dict, dict]:
    """(unit_counts(..., top1=False), unit_counts(..., top1=True)) from one query: the tagged
    units built and joined once, each active unit flagged `top` where it is a rank-0 choice."""
    with common.temp_view(store, tag_ids(tag_values)) as tv_view:
        ctes, params = unit_sets(store, run, kind, tv_view, unit, site=site, ranked=True)
        parts = common.df(store,
            "WITH " + ", ".join(ctes) + " "
            "SELECT 'active' AS part, site, choice, NULL::INTEGER AS tid, count(*) AS n, "
            "count(*) FILTER (WHERE top) AS n_top FROM active GROUP BY site, choice "
            "UNION ALL SELECT 'tag', NULL, NULL, tid, count(*), count(*) FROM tagged GROUP BY tid "
            "UNION ALL SELECT 'both', a.site, a.choice, t.tid, count(*), "
            "count(*) FILTER (WHERE a.top) FROM active a JOIN tagged t USING (u) "
            "GROUP BY a.site, a.choice, t.tid", params)
    first = parts[parts.n_top > 0].drop(columns="n").rename(columns={"n_top": "n"})
    # a tag's units do not depend on ranks: unit_counts(top1=True) gives the same `tag`
    return split_counts(parts.drop(columns="n_top"), tag_values), split_counts(first, tag_values)


def unit_sets(store, run: str, kind: str, tv_view: str, unit: str,
              top1: bool = False, site: str | None = None, sample: str = "",
              ranked: bool = False, kind_param: str = "kind") -> tuple:
    """The CTEs `tagged` (u, tid) and `active` (site, choice, u) behind `unit_counts`, with
    their parameters. tv_view: a view of `tag_ids(tag_values)`, e.g.
    `with common.temp_view(store, tag_ids(tag_values)) as tv_view:` (a tag id is a row of
    tag_values). `sample`: an extra SQL condition on `example` (e.g. a hash sample).
    ranked: `active` also has `top` (the unit's choice is a rank-0 one; any rank kept).
    kind_param: the parameter that holds `kind` (several kinds in one query: one each)."""
    params = {"run": run, kind_param: kind}
    route_filter = f"run = $run AND kind = ${kind_param}" + (" AND rank = 0" if top1 else "")
    if site is not None:
        route_filter += " AND site = $site"
        params["site"] = site
    sample = f" AND ({sample})" if sample else ""
    route_filter += sample
    ctes = [f"tv AS (SELECT name, value, tid FROM {tv_view})"]
    if unit == "example":
        ctes.append("tagged AS MATERIALIZED (SELECT DISTINCT t.example AS u, tv.tid FROM tags t "
                    "JOIN tv USING (name, value) WHERE t.run = $run" + sample + ")")
        ctes.append("active AS MATERIALIZED (SELECT site, choice, example AS u, "
                    f"bool_or(rank = 0) AS top FROM routes WHERE {route_filter} "
                    "GROUP BY site, choice, example)" if ranked else
                    "active AS MATERIALIZED (SELECT DISTINCT site, choice, example AS u "
                    f"FROM routes WHERE {route_filter})")
    else:
        example_tags = _exists(store, "tags", "run = $run AND token = -1", params)
        example_routes = _exists(store, "routes", f"{route_filter} AND token = -1", params)
        if example_tags or example_routes:
            ctes.append(f"lengths AS MATERIALIZED ({example_lengths_sql(store, run)})")
        inherited_tags = (
            " UNION ALL SELECT " + common.unit_key("example", "pos") + " AS u, tid FROM ("
            "SELECT t.example, tv.tid, unnest(range(l.n)) AS pos FROM tags t "
            "JOIN tv USING (name, value) JOIN lengths l USING (example) "
            f"WHERE t.run = $run AND t.token = -1{sample})") if example_tags else ""
        ctes.append("tagged AS MATERIALIZED (SELECT DISTINCT u, tid FROM ("
                    "SELECT " + common.unit_key("t.example", "t.token") + " AS u, tv.tid FROM tags t "
                    "JOIN tv USING (name, value) WHERE t.run = $run AND t.token >= 0" + sample +
                    f"{inherited_tags}))")
        top, r_top = (", rank = 0 AS top", ", r.rank = 0 AS top") if ranked else ("", "")
        inherited_routes = (
            " UNION ALL SELECT site, choice, " + common.unit_key("example", "pos") + " AS u"
            f"{', top' if ranked else ''} FROM ("
            f"SELECT r.site, r.choice{r_top}, r.example, unnest(range(l.n)) AS pos FROM routes r "
            f"JOIN lengths l USING (example) WHERE {route_filter} AND r.token = -1)"
        ) if example_routes else ""
        ctes.append("active AS NOT MATERIALIZED (SELECT site, choice, " + common.unit_key() + " AS u"
                    f"{top} FROM routes WHERE {route_filter} AND token >= 0{inherited_routes})")
    return ctes, params


def split_counts(parts: pd.DataFrame, tag_values: pd.DataFrame) -> dict:
    """The rows of `counts_sql` (tid: a row of tag_values) as `unit_counts`' three frames
    `active` (site, choice, n_active), `tag` (name, value, n_tag) and `both` (site, choice,
    name, value, n_both)."""
    names = tag_values.name.to_numpy()
    values = tag_values.value.to_numpy()
    active = parts[parts.part == "active"]
    tagged = parts[parts.part == "tag"]
    both = parts[parts.part == "both"]
    t_ids = tagged.tid.astype("int64").to_numpy()
    b_ids = both.tid.astype("int64").to_numpy()
    return {
        "active": pd.DataFrame({"site": active.site.astype(str).to_numpy(),
                                "choice": active.choice.astype("int64").to_numpy(),
                                "n_active": active.n.astype("int64").to_numpy()}),
        "tag": pd.DataFrame({"name": names[t_ids], "value": values[t_ids],
                             "n_tag": tagged.n.astype("int64").to_numpy()}),
        "both": pd.DataFrame({"site": both.site.astype(str).to_numpy(),
                              "choice": both.choice.astype("int64").to_numpy(),
                              "name": names[b_ids], "value": values[b_ids],
                              "n_both": both.n.astype("int64").to_numpy()}),
    }




def run_tags(store, run: str) -> pd.DataFrame:
    """Every tag row of `run` (example, token, name, value), for unit_counts_read."""
    return common.df(store, "SELECT example, token, name, value FROM tags WHERE run = $run",
                     {"run": run})


def unit_counts_read(store, run: str, kind: str, tags: pd.DataFrame, families: list,
                     unit: str, site: str | None = None) -> dict:
    """The counts of `unit_counts` for every value of `families`, any rank and top-1 at once,
    counted in numpy from one read of the run's routes (tags: `run_tags`): for a small run
    (the one input a click on Inspect records) the SQL's round trips and plans cost ~20× the
    counting. Integer-coded: sites [S] (sorted names), names/values [V] (tag value v), and for
    "routed" (any rank) and "first" (rank 0): active (site, choice, n) and
    both (site, choice, v, n) arrays, n > 0."""
    params = {"run": run, "kind": kind}
    where = "run = $run AND kind = $kind"
    if site is not None:
        where, params["site"] = where + " AND site = $site", site
    routes = common.df(store, f"SELECT site, choice, rank, example, token FROM routes "
                       f"WHERE {where}", params)
    tags = tags[tags.name.isin(list(families)) & tags.value.notna()]
    sites, site_id = np.unique(routes.site.astype(str).to_numpy(dtype=object),
                               return_inverse=True)
    names, name_id = np.unique(tags.name.astype(str).to_numpy(dtype=object), return_inverse=True)
    texts, text_id = np.unique(tags.value.astype(str).to_numpy(dtype=object), return_inverse=True)
    width = max(len(texts), 1)
    pairs, tid = np.unique(name_id.ravel() * width + text_id.ravel(), return_inverse=True)
    site_id, tid = site_id.ravel(), tid.ravel()
    r_example, r_token = (routes.example.to_numpy(dtype="int64"),
                          routes.token.to_numpy(dtype="int64"))
    t_example, t_token = tags.example.to_numpy(dtype="int64"), tags.token.to_numpy(dtype="int64")
    lengths = None
    if unit != "example" and ((t_token == -1).any() or (r_token == -1).any()):
        lengths = _lengths(store, run)
    if unit == "example":
        t_unit, t_rows = t_example, np.arange(len(tags))
    else:
        t_unit, t_rows = _token_units(t_example, t_token, lengths)
    tagged = _distinct(t_unit, tid[t_rows])[:2]  # sorted by unit
    choice = routes.choice.to_numpy(dtype="int64")
    top = routes["rank"].to_numpy(dtype="int64") == 0
    out = {"sites": sites, "names": names[pairs // width], "values": texts[pairs % width]}
    for part, rows in (("routed", np.arange(len(routes))), ("first", np.flatnonzero(top))):
        if unit == "example":
            a_site, a_choice, a_unit, _ = _distinct(site_id[rows], choice[rows], r_example[rows])
        else:
            a_unit, a_rows = _token_units(r_example[rows], r_token[rows], lengths)
            a_site, a_choice = site_id[rows][a_rows], choice[rows][a_rows]
        out[part] = {"active": _distinct(a_site, a_choice),
                     "both": _distinct(*_joined(a_site, a_choice, a_unit, tagged))}
    return out


def _lengths(store, run: str) -> tuple:
    """(example, n) sorted by example, as example_lengths_sql gives them: one query where the
    run recorded its tokens or lengths (the SQL's EXISTS check is then known true)."""
    frame = common.df(store, "SELECT example, max(n) AS n FROM (SELECT example, count(*) AS n "
                      "FROM tokens WHERE run = $run AND token >= 0 GROUP BY example UNION ALL "
                      "SELECT example, n_tokens FROM examples WHERE run = $run AND n_tokens IS "
                      "NOT NULL) GROUP BY example", {"run": run})
    if frame.empty:
        frame = common.df(store, example_lengths_sql(store, run), {"run": run})
    frame = frame.sort_values("example")
    return frame.example.to_numpy(dtype="int64"), frame.n.to_numpy(dtype="int64")


def _token_units(example: np.ndarray, token: np.ndarray, lengths) -> tuple:
    """(unit key, source row) of every token unit the rows cover: a row of token >= 0 its
    own token, a per-example row (token -1) each token 0..n-1 of its example."""
    own = np.flatnonzero(token >= 0)
    keys, rows = [example[own] * common.UNIT_KEY + token[own] + 1], [own]
    whole = np.flatnonzero(token == -1)
    if len(whole) and lengths is not None and len(lengths[0]):
        known, n_of = lengths
        at = np.minimum(np.searchsorted(known, example[whole]), len(known) - 1)
        found = known[at] == example[whole]
        whole, n = whole[found], n_of[at[found]]
        spread = np.repeat(whole, n)
        position = np.arange(len(spread)) - np.repeat(np.cumsum(n) - n, n)
        keys.append(example[spread] * common.UNIT_KEY + position + 1)
        rows.append(spread)
    return np.concatenate(keys), np.concatenate(rows)


def _joined(site, choice, unit, tagged) -> tuple:
    """(site, choice, v) once for each active row and each tag value v its unit carries."""
    tagged_unit, tagged_value = tagged
    first = np.searchsorted(tagged_unit, unit, side="left")
    n = np.searchsorted(tagged_unit, unit, side="right") - first
    rows = np.repeat(np.arange(len(unit)), n)
    at = np.repeat(first, n) + np.arange(len(rows)) - np.repeat(np.cumsum(n) - n, n)
    return site[rows], choice[rows], tagged_value[at]


def _distinct(*columns) -> tuple:
    """The distinct rows of integer columns, sorted, and how often each occurs: (*columns, n)."""
    columns = [np.asarray(c, dtype="int64") for c in columns]
    if not len(columns[0]):
        return (*columns, np.zeros(0, dtype="int64"))
    key, levels = np.zeros(len(columns[0]), dtype="int64"), []
    for column in columns:  # one int64 key, mixed radix over each column's distinct values
        level, code = np.unique(column, return_inverse=True)
        key = key * len(level) + code.ravel()
        levels.append(level)
    if np.prod([float(len(level)) for level in levels]) >= 2.0**62:
        keyed, n = np.unique(np.stack(columns), axis=1, return_counts=True)
        return (*keyed, n)
    key, n = np.unique(key, return_counts=True)
    out = []
    for level in reversed(levels):
        key, code = np.divmod(key, len(level))
        out.append(level[code])
    return (*reversed(out), n)
