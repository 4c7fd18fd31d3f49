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
    recorded = common.scalar(store, "SELECT EXISTS (SELECT 1 FROM tokens WHERE run = $run) OR "
                             "EXISTS (SELECT 1 FROM examples WHERE run = $run AND n_tokens "
                             "IS NOT NULL)", {"run": run})
    if not recorded:
        parts.append("SELECT example, max(token) + 1 FROM routes WHERE run = $run GROUP BY example")
    return ("SELECT example, max(n) AS n FROM (" + " UNION ALL ".join(parts)
            + ") GROUP BY example")


def _exists(store, table: str, where: str, params: dict) -> bool:
    return bool(common.scalar(store, f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {where})",
                              params))


def unit_counts(store, run: str, kind: str, tag_values: pd.DataFrame, unit: str,
                top1: bool = False, site: str | None = None) -> dict:
    """tag_values: name, value (row i is tag id i). Returns frames `active` (site, choice,
    n_active), `tag` (name, value, n_tag) and `both` (site, choice, name, value, n_both)."""
    with common.temp_view(store, tag_ids(tag_values)) as tv_view:
        ctes, params = unit_sets(store, run, kind, tv_view, unit, top1, site)
        parts = common.df(store, _counts_sql(ctes), params)
    return _split(parts, tag_values)


def tag_ids(tag_values: pd.DataFrame) -> pd.DataFrame:
    """name, value, tid (= row number): the frame behind the `tv` view of `unit_sets`."""
    return pd.DataFrame({"name": tag_values.name.astype(str).to_numpy(),
                         "value": tag_values.value.astype(str).to_numpy(),
                         "tid": np.arange(len(tag_values), dtype="int64")})


def _counts_sql(ctes) -> str:
    return (
        "WITH " + ", ".join(ctes) + " "
        "SELECT 'active' AS part, site, choice, NULL::INTEGER AS tid, count(*) AS n "
        "FROM active GROUP BY site, choice "
        "UNION ALL SELECT 'tag', NULL, NULL, tid, count(*) FROM tagged GROUP BY tid "
        "UNION ALL SELECT 'both', a.site, a.choice, t.tid, count(*) "
        "FROM active a JOIN tagged t USING (u) GROUP BY a.site, a.choice, t.tid")


def unit_sets(store, run: str, kind: str, tv_view: str, unit: str,
              top1: bool = False, site: str | None = None, sample: str = "") -> tuple:
    """The CTEs `tagged` (u, tid) and `active` (site, choice, u) behind `unit_counts`, with
    their parameters. tv_view: a view of `tag_ids(tag_values)`, e.g.
    `with common.temp_view(store, tag_ids(tag_values)) as tv_view:` (a tag id is a row of
    tag_values). `sample`: an extra SQL condition on `example` (e.g. a hash sample)."""
    params = {"run": run, "kind": kind}
    route_filter = "run = $run AND kind = $kind" + (" AND rank = 0" if top1 else "")
    if site is not None:
        route_filter += " AND site = $site"
        params["site"] = site
    sample = f" AND ({sample})" if sample else ""
    route_filter += sample
    ctes = [f"tv AS (SELECT name, value, tid FROM {tv_view})"]
    if unit == "example":
        ctes.append("tagged AS MATERIALIZED (SELECT DISTINCT t.example AS u, tv.tid FROM tags t "
                    "JOIN tv USING (name, value) WHERE t.run = $run" + sample + ")")
        ctes.append("active AS MATERIALIZED (SELECT DISTINCT site, choice, example AS u "
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
        inherited_routes = (
            " UNION ALL SELECT site, choice, " + common.unit_key("example", "pos") + " AS u FROM ("
            "SELECT r.site, r.choice, r.example, unnest(range(l.n)) AS pos FROM routes r "
            f"JOIN lengths l USING (example) WHERE {route_filter} AND r.token = -1)"
        ) if example_routes else ""
        ctes.append("active AS NOT MATERIALIZED (SELECT site, choice, " + common.unit_key() + " AS u "
                    f"FROM routes WHERE {route_filter} AND token >= 0{inherited_routes})")
    return ctes, params


def _split(parts: pd.DataFrame, tag_values: pd.DataFrame) -> dict:
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
