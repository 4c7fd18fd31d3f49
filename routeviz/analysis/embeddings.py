"""2-D UMAP maps of tokens, coloured by expert, tag or exit layer.

    result = embed(store, run, source="routing", site="model.layers.1.mlp.gate", limit=2000)
    result.points  # example, token, x, y, expert, exit_layer, text, tag columns "tag:<name>"
    result.note    # "2000 of 18432 tokens shown (random sample, seed 0)"

source "routing": each token's routing-probability vector at one expert site: the softmax of
its router logits when the run recorded them, else its recorded top-k gate weights placed at
their expert ids (zeros elsewhere). source "hidden": the hidden states of the `embeddings`
table recorded at one routing site (the input its router received; `trace(...,
hidden_states=True)`), or at one layer for stores that recorded them per layer. At most `limit` units are drawn (a seeded reservoir sample inside
DuckDB) and the result says how many of how many are shown.

UMAP compiles its kernels with numba on the first call in a process (~15-30 s on this
machine); `warm_umap()` pays that once, e.g. in a background thread at app start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from routeviz.errors import RoutevizError, choose
from routeviz.metrics import _common as common

UNIT_KEY = 16_777_216


@dataclass
class EmbeddingResult:
    points: pd.DataFrame  # example, token, x, y, expert, exit_layer, text, "tag:<name>"...
    source: str  # "routing" or "hidden"
    site: str | None  # the expert site embedded (routing) or coloured by (hidden), or None
    layer: int | None  # the hidden-state layer (hidden) or None
    n_total: int  # units available before sampling
    n_shown: int
    note: str
    state_site: str | None = None  # the site whose recorded input is mapped (hidden)


def warm_umap() -> None:
    """Run UMAP once on a few random points so numba compiles its kernels now."""
    project(np.random.default_rng(0).random((32, 4), dtype=np.float32))


def project(vectors: np.ndarray, n_neighbors: int = 15, seed: int = 0) -> np.ndarray:
    """[n, d] -> [n, 2] UMAP coordinates (n >= 4; fewer neighbours for small n)."""
    import umap

    n = len(vectors)
    if n < 4:
        raise RoutevizError(f"UMAP needs at least 4 points; there are {n}")
    reducer = umap.UMAP(n_neighbors=max(2, min(n_neighbors, n - 1)), n_components=2,
                        random_state=seed, init="spectral" if n > 64 else "random",
                        n_jobs=1)
    return np.asarray(reducer.fit_transform(np.asarray(vectors, dtype=np.float32)))


def embed(store, run: str, source: str = "routing", site: str | None = None,
          layer: int | None = None, limit: int = 2000, seed: int = 0,
          n_neighbors: int = 15) -> EmbeddingResult:
    run = common.require_run(store, run)
    choose("source", source, ["routing", "hidden"])
    state_site = None
    if source == "routing":
        site = _expert_site(store, run, site)
        units, vectors, n_total = _routing_vectors(store, run, site, limit, seed)
    else:
        state_site, layer = _hidden_key(store, run, site, layer)
        units, vectors, n_total = _hidden_vectors(store, run, state_site, layer, limit, seed)
        sites = common.sites_of(store, run, "expert").site.tolist()
        # colour by the top-1 expert at the site whose input this is, else at the last one
        site = state_site if state_site in sites else (sites[-1] if sites else None)
    xy = project(vectors, n_neighbors=n_neighbors, seed=seed)  # [n, 2]
    points = units.assign(x=xy[:, 0], y=xy[:, 1])
    points = _decorate(store, run, points, site)
    what = "tokens" if (points.token >= 0).any() else "examples"
    sampled = f" (random sample, seed {seed})" if n_total > len(points) else ""
    note = f"{len(points)} of {n_total} {what} shown{sampled}"
    return EmbeddingResult(points=points, source=source, site=site, layer=layer,
                           n_total=n_total, n_shown=len(points), note=note,
                           state_site=state_site if source == "hidden" else None)


def _expert_site(store, run, site):
    sites = common.sites_of(store, run, "expert").site.tolist()
    if not sites:
        raise RoutevizError(f"run {run!r} has no expert routes to embed; try source='hidden'")
    return sites[-1] if site is None else choose("site", site, sites)


def hidden_sites(store, run) -> pd.DataFrame:
    """site, layer of the run's recorded hidden states, in model order (site NULL: a store
    that recorded them per layer only)."""
    return common.df(store, "SELECT site, layer, count(*) AS n FROM embeddings WHERE run = $run "
                            "GROUP BY site, layer ORDER BY layer, site", {"run": run})


def _hidden_key(store, run, site, layer) -> tuple:
    """(site or None, layer): which recorded states to map; a site where the store has
    sites (default: the last expert site with states), else a layer (default: the last)."""
    keys = hidden_sites(store, run)
    if keys.empty:
        raise RoutevizError(f"run {run!r} recorded no hidden states (the embeddings table is "
                            "empty); trace with hidden_states=True (CLI: --hidden-states) "
                            "or use source='routing'")
    named = keys.dropna(subset=["site"])
    if len(named) and layer is None:
        if site is None:
            experts = set(common.sites_of(store, run, "expert").site)
            preferred = named[named.site.isin(experts)]
            site = str((preferred if len(preferred) else named).site.iloc[-1])
        choose("site", site, named.site.tolist())
        return site, int(named[named.site == site].layer.iloc[0])
    layers = sorted({int(v) for v in keys.layer})
    if layer is None:
        return None, layers[-1]
    if int(layer) not in layers:
        raise RoutevizError(f"unknown layer {layer!r}; available: "
                            + ", ".join(str(v) for v in layers))
    return None, int(layer)


def _sample_sql(table: str, where: str) -> str:
    return (f"SELECT DISTINCT example, token FROM {table} WHERE {where}")


def _routing_vectors(store, run, site, limit, seed):
    params = {"run": run, "site": site}
    units_sql = _sample_sql("routes", "run = $run AND site = $site AND kind = 'expert'")
    n_total = int(common.scalar(store, f"SELECT count(*) FROM ({units_sql})", params) or 0)
    sample = (f"SELECT * FROM ({units_sql}) USING SAMPLE reservoir({int(limit)} ROWS) "
              f"REPEATABLE ({int(seed)})")
    has_logits = bool(common.scalar(
        store, "SELECT EXISTS (SELECT 1 FROM logits WHERE run = $run AND site = $site)", params))
    if has_logits:
        rows = common.df(store,
            f"WITH s AS ({sample}) SELECT l.example, l.token, l.\"values\" AS v FROM logits l "
            "JOIN s USING (example, token) WHERE l.run = $run AND l.site = $site "
            "ORDER BY l.example, l.token", params)
        logits = np.array([np.asarray(v, dtype=np.float32) for v in rows.v])  # [n, e]
        logits -= logits.max(axis=1, keepdims=True)
        vectors = np.exp(logits)
        vectors /= vectors.sum(axis=1, keepdims=True)
        return rows[["example", "token"]].reset_index(drop=True), vectors, n_total
    n_experts = common.n_experts_by_site(store, run, [site])[site]
    rows = common.df(store,
        f"WITH s AS ({sample}) SELECT r.example, r.token, r.choice, coalesce(r.weight, 1.0) "
        "AS weight FROM routes r JOIN s USING (example, token) WHERE r.run = $run AND "
        "r.site = $site AND r.kind = 'expert' ORDER BY r.example, r.token", params)
    units = rows[["example", "token"]].drop_duplicates().reset_index(drop=True)
    index = pd.Series(np.arange(len(units)),
                      index=units.example.to_numpy() * UNIT_KEY + units.token.to_numpy())
    row_of = index.loc[rows.example.to_numpy() * UNIT_KEY + rows.token.to_numpy()].to_numpy()
    vectors = np.zeros((len(units), n_experts), dtype=np.float32)  # [n, e]
    vectors[row_of, rows.choice.to_numpy()] = rows.weight.to_numpy()
    return units, vectors, n_total


def _hidden_vectors(store, run, state_site, layer, limit, seed):
    params = {"run": run, "layer": layer, "site": state_site}
    where = "run = $run AND layer = $layer" + (" AND site = $site" if state_site else "")
    units_sql = _sample_sql("embeddings", where)
    n_total = int(common.scalar(store, f"SELECT count(*) FROM ({units_sql})", params) or 0)
    rows = common.df(store,
        f"WITH s AS (SELECT * FROM ({units_sql}) USING SAMPLE reservoir({int(limit)} ROWS) "
        f"REPEATABLE ({int(seed)})) SELECT e.example, e.token, any_value(e.vector) AS v "
        f"FROM embeddings e JOIN s USING (example, token) WHERE {where} "
        "GROUP BY e.example, e.token ORDER BY e.example, e.token", params)
    vectors = np.array([np.asarray(v, dtype=np.float32) for v in rows.v])  # [n, h]
    return rows[["example", "token"]].reset_index(drop=True), vectors, n_total


def _decorate(store, run, points: pd.DataFrame, site) -> pd.DataFrame:
    """Add the colour columns: top-1 expert at `site`, exit layer, token text, tags."""
    keys = {"run": run, "examples": sorted({int(e) for e in points.example})}
    shown = "run = $run AND list_contains($examples, example)"
    out = points.copy()
    if site is not None:
        top = common.df(store, f"SELECT example, token, choice AS expert FROM routes WHERE "
                        f"{shown} AND site = $site AND kind = 'expert' AND rank = 0",
                        {**keys, "site": site})
        out = out.merge(top, on=["example", "token"], how="left")
    exit_rows = common.df(store, f"SELECT example, token, max(choice) AS exit_layer FROM routes "
                          f"WHERE {shown} AND kind = 'exit' GROUP BY example, token", keys)
    per_example = exit_rows[exit_rows.token == -1][["example", "exit_layer"]]
    out = out.merge(exit_rows[exit_rows.token >= 0], on=["example", "token"], how="left")
    if len(per_example):
        out = out.merge(per_example.rename(columns={"exit_layer": "example_exit"}),
                        on="example", how="left")
        out["exit_layer"] = out.exit_layer.fillna(out.pop("example_exit"))
    text = common.df(store, f"SELECT example, token, text FROM tokens WHERE {shown}", keys)
    out = out.merge(text, on=["example", "token"], how="left")
    tags = common.df(store, f"SELECT example, token, name, value FROM tags WHERE {shown}", keys)
    for name, group in tags.groupby("name"):
        column = f"tag:{name}"
        own = group[group.token >= 0][["example", "token", "value"]]
        inherited = group[group.token == -1][["example", "value"]]
        out = out.merge(own.drop_duplicates(["example", "token"]).rename(
            columns={"value": column}), on=["example", "token"], how="left")
        if len(inherited):
            fill = out.example.map(inherited.drop_duplicates("example")
                                   .set_index("example").value)
            out[column] = out[column].fillna(fill)
    return out
