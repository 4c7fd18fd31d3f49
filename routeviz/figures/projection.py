"""2-D maps of tokens for the Embeddings view: recorded token states (the `embeddings`
table) when the run has them, else each token's routing signature (its gate weights at
every expert site, kept flags, exit depth). At most `limit` tokens, a fixed hash sample."""

from __future__ import annotations

import numpy as np
import pandas as pd

SAMPLE = ("SELECT example, token FROM ({units}) ORDER BY hash(example * 1000003 + token) "
          "LIMIT ?")


def count_units(store, run: str, source: str) -> int:
    table = "embeddings" if source == "states" else "routes"
    return int(store.con.execute(f"SELECT count(*) FROM (SELECT DISTINCT example, token FROM "
                                 f"{table} WHERE run = ? AND token >= 0)", [run]).fetchone()[0])


def has_states(store, run: str) -> bool:
    return store.con.execute("SELECT count(*) FROM embeddings WHERE run = ?", [run]).fetchone()[0] > 0


def _sample(store, run, table, limit):
    units = f"SELECT DISTINCT example, token FROM {table} WHERE run = ? AND token >= 0"
    return store.query_df(SAMPLE.format(units=units), [run, int(limit)])


def routing_signatures(store, run: str, limit: int = 5000):
    """([n, features] float array, points frame: example, token) for up to `limit` tokens."""
    points = _sample(store, run, "routes", limit).sort_values(["example", "token"])
    store.con.register("_rv_points", points)
    try:
        routes = store.query_df(
            "SELECT r.example, r.token, r.site, r.kind, r.choice, coalesce(r.weight, 1.0) AS weight "
            "FROM routes r JOIN _rv_points p USING (example, token) WHERE r.run = ?", [run])
    finally:
        store.con.unregister("_rv_points")
    routes["site"] = routes["site"].astype(str)
    routes["kind"] = routes["kind"].astype(str)
    experts = routes[routes["kind"] == "expert"]
    columns = [experts.assign(feature=experts["site"] + ":e" + experts["choice"].astype(str))]
    keeps = routes[routes["kind"] == "keep"]
    columns.append(keeps.assign(feature=keeps["site"] + ":kept", weight=keeps["choice"].astype(float)))
    exits = routes[routes["kind"] == "exit"]
    depth = exits["choice"].astype(float) / max(float(exits["choice"].max() or 1), 1.0)
    columns.append(exits.assign(feature="exit", weight=depth))
    long = pd.concat(columns, ignore_index=True)
    wide = long.pivot_table(index=["example", "token"], columns="feature", values="weight",
                            aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(pd.MultiIndex.from_frame(points[["example", "token"]]), fill_value=0.0)
    return wide.to_numpy(dtype=np.float32), points.reset_index(drop=True)


def token_states(store, run: str, layer: int | None = None, limit: int = 5000):
    """([n, d] recorded states at `layer` (default: the deepest), points frame)."""
    if layer is None:
        layer = store.con.execute("SELECT max(layer) FROM embeddings WHERE run = ?", [run]).fetchone()[0]
    df = store.query_df(
        "SELECT example, token, vector FROM embeddings WHERE run = ? AND layer = ? AND token >= 0 "
        "ORDER BY hash(example * 1000003 + token) LIMIT ?", [run, int(layer), int(limit)])
    df = df.sort_values(["example", "token"]).reset_index(drop=True)
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in df["vector"]]) if len(df) else \
        np.zeros((0, 2), np.float32)
    return vectors, df[["example", "token"]]


def project(matrix: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """[n, f] -> [n, 2] by UMAP (umap-learn) or PCA; tiny inputs fall back to PCA."""
    n = matrix.shape[0]
    if n == 0:
        return np.zeros((0, 2))
    if method == "umap" and n >= 10:
        import umap

        reducer = umap.UMAP(n_neighbors=min(15, n - 1), n_components=2, random_state=seed,
                            n_jobs=1)
        return reducer.fit_transform(matrix)
    centered = matrix - matrix.mean(axis=0, keepdims=True)
    if centered.shape[1] < 2:
        centered = np.hstack([centered, np.zeros((n, 2 - centered.shape[1]))])
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T


def label_points(store, run: str, points: pd.DataFrame, expert_site: str | None,
                 tag: str | None) -> pd.DataFrame:
    """points + text, expert (top-1 at `expert_site`), exit layer, and `tag` values."""
    store.con.register("_rv_points", points[["example", "token"]])
    try:
        text = store.query_df("SELECT p.example, p.token, t.text FROM _rv_points p LEFT JOIN "
                              "(SELECT * FROM tokens WHERE run = ?) t USING (example, token)", [run])
        expert = store.query_df(
            "SELECT example, token, choice AS expert FROM routes JOIN _rv_points USING "
            "(example, token) WHERE run = ? AND kind = 'expert' AND rank = 0 AND site = ?",
            [run, expert_site or ""])
        exits = store.query_df(
            "SELECT p.example, p.token, r.choice AS exit_layer FROM _rv_points p JOIN routes r ON "
            "r.example = p.example AND (r.token = p.token OR r.token = -1) "
            "WHERE r.run = ? AND r.kind = 'exit'", [run])
        tags = store.query_df(
            "SELECT p.example, p.token, first(g.value) AS tag FROM _rv_points p JOIN tags g ON "
            "g.example = p.example AND (g.token = p.token OR g.token = -1) "
            "WHERE g.run = ? AND g.name = ? GROUP BY ALL", [run, tag or ""])
    finally:
        store.con.unregister("_rv_points")
    out = points.merge(text, how="left", on=["example", "token"])
    for extra in (expert, exits.drop_duplicates(["example", "token"]), tags):
        out = out.merge(extra, how="left", on=["example", "token"])
    out["label"] = [f"#{e}:{t} {s}" for e, t, s in zip(out["example"], out["token"],
                                                       out["text"].fillna(""))]
    return out
