"""Analysis views: Focus/Cover bars, the A_ij alignment heatmap, run-vs-run comparison and
the embedding scatter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from routeviz.figures.data import plot_text, short_site
from routeviz.figures.labels import site_label
from routeviz.figures.palette import expert_color

FOCUS_COLOR, COVER_COLOR = "#2E91E5", "#E15F99"
CHANCE_COLOR = "rgba(40, 40, 40, 0.45)"  # the permutation band over a bar or line


def focus_cover_bars(scores: pd.DataFrame, title: str = "") -> go.Figure:
    """scores columns: site, tag, focus, cover (site "*" = pooled over all sites); with the
    permutation band of `metrics.focus_cover_baseline` (`<score>_lo`, `<score>_hi`) each
    bar gets a grey band over it: where 95% of tag shuffles land (chance)."""
    scores = scores.copy()
    scores["site"] = scores["site"].astype(str)
    pooled = scores["site"] == "*"
    scores = pd.concat([scores[pooled], scores[~pooled]])
    many_tags = scores["tag"].nunique() > 1
    labels = [plot_text(site_label(s)) + (f" · {plot_text(str(t))}" if many_tags else "")
              for s, t in zip(scores["site"], scores["tag"])]
    fig = go.Figure([
        go.Bar(x=labels, y=scores["focus"], name="Focus", marker_color=FOCUS_COLOR,
               offsetgroup="focus", **_band_hover(scores, "focus", "Focus")),
        go.Bar(x=labels, y=scores["cover"], name="Cover", marker_color=COVER_COLOR,
               offsetgroup="cover", **_band_hover(scores, "cover", "Cover")),
    ])
    for column, name in (("focus", "Focus"), ("cover", "Cover")):
        if f"{column}_lo" in scores:
            fig.add_trace(_chance_band(labels, scores, column, name))
    fig.update_layout(title=title or "Focus and Cover per site (pooled first)", barmode="group",
                      yaxis_range=[0, 1], height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def _chance_band(labels: list, scores: pd.DataFrame, column: str, name: str) -> go.Bar:
    """The permutation band of one score as a bar from `_lo` to `_hi`, drawn over the
    score's own bar (same offsetgroup): a grey strip at chance level."""
    lo = scores[f"{column}_lo"].astype(float).to_numpy()
    hi = scores[f"{column}_hi"].astype(float).to_numpy()
    height = np.maximum(hi - lo, 0.006)  # a band of zero width still shows as a line
    return go.Bar(x=labels, y=height, base=lo - (height - (hi - lo)) / 2,
                  name=f"chance band ({name})", offsetgroup=column,
                  legendgroup="chance", marker=dict(color=CHANCE_COLOR,
                                                    line=dict(color="#222222", width=1)),
                  customdata=np.stack([lo, hi], axis=1),
                  hovertemplate="%{x}<br>" + name + " chance band %{customdata[0]:.3f}"
                                "–%{customdata[1]:.3f} (tags shuffled)<extra></extra>")


def _band_hover(scores: pd.DataFrame, column: str, name: str) -> dict:
    """Hover text for one bar trace, with the permutation band (columns `<column>_lo`,
    `<column>_hi` from metrics.focus_cover_baseline) when the scores carry it."""
    template = "%{x}<br>" + name + " %{y:.3f}"
    if f"{column}_lo" not in scores:
        return {"hovertemplate": template + "<extra></extra>"}
    return {"customdata": scores[[f"{column}_lo", f"{column}_hi"]].to_numpy(),
            "hovertemplate": template + "<br>chance band %{customdata[0]:.3f}"
                             "–%{customdata[1]:.3f}<extra></extra>"}


def diagonal_order(matrix: pd.DataFrame) -> pd.DataFrame:
    """Rows and columns reordered so that each row's best match lies on a diagonal: columns
    by the rank of the row they match best (rows first taken by their best value), then rows
    by the position of their best column, best value first among rows sharing a column."""
    if matrix.empty:
        return matrix
    values = matrix.fillna(0.0)
    rows = values.max(axis=1).sort_values(ascending=False, kind="stable").index
    row_rank = {r: i for i, r in enumerate(rows)}
    col_key = pd.DataFrame({"row": [row_rank[r] for r in values.idxmax(axis=0)],
                            "best": -values.max(axis=0).to_numpy()}, index=values.columns)
    cols = col_key.sort_values(["row", "best"], kind="stable").index
    col_rank = {c: i for i, c in enumerate(cols)}
    row_key = pd.DataFrame({"col": [col_rank[c] for c in values[cols].idxmax(axis=1)],
                            "best": -values.max(axis=1).to_numpy()}, index=values.index)
    return matrix.loc[row_key.sort_values(["col", "best"], kind="stable").index, cols]


def alignment_heatmap(matrix: pd.DataFrame, max_rows: int = 60, max_cols: int = 96,
                      title: str = "") -> go.Figure:
    """matrix: tag values down (index), subnetworks across (columns), A_ij F1 in cells.

    Rows and columns are drawn in diagonal_order (top row first). Larger matrices keep the
    rows and columns with the highest maxima, and say so."""
    full_shape = matrix.shape
    if matrix.shape[0] > max_rows:
        matrix = matrix.loc[matrix.max(axis=1).sort_values(ascending=False).index[:max_rows]]
    if matrix.shape[1] > max_cols:
        matrix = matrix[matrix.max(axis=0).sort_values(ascending=False).index[:max_cols]]
    matrix = diagonal_order(matrix)
    fig = go.Figure(go.Heatmap(
        z=matrix.to_numpy(dtype=float), x=[plot_text(_short_subnetwork(c)) for c in matrix.columns],
        y=[plot_text(str(i)) for i in matrix.index], zmin=0, zmax=1, colorscale="Viridis",
        colorbar=dict(title="A_ij (F1)"),
        hovertemplate="tag %{y}<br>subnetwork %{x}<br>A = %{z:.3f}<extra></extra>"))
    title = title or "A_ij: F1 between tag i and subnetwork j"
    if matrix.shape != full_shape:
        title += f" (top {matrix.shape[0]}×{matrix.shape[1]} of {full_shape[0]}×{full_shape[1]})"
    fig.update_layout(title=title, height=max(300, 80 + 18 * matrix.shape[0]),
                      margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(tickangle=-60)
    fig.update_yaxes(autorange="reversed")  # the first (best-matched) row on top
    return fig


def _short_subnetwork(label) -> str:
    """`model.layers.3.mlp.gate · expert 5` -> `3.mlp.gate · expert 5`."""
    site, sep, rest = str(label).partition(" · ")
    return short_site(site) + sep + rest


def compare_bars(table: pd.DataFrame, run_a: str, run_b: str, title: str = "") -> go.Figure:
    """table columns: metric, a, b — one pair of bars per metric."""
    fig = go.Figure([
        go.Bar(x=[plot_text(str(m)) for m in table["metric"]], y=table["a"],
               name=plot_text(run_a), marker_color=FOCUS_COLOR),
        go.Bar(x=[plot_text(str(m)) for m in table["metric"]], y=table["b"],
               name=plot_text(run_b), marker_color=COVER_COLOR),
    ])
    fig.update_layout(title=title or "Two runs side by side", barmode="group", height=360,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def embedding_scatter(points: pd.DataFrame, color: str, title: str = "",
                      highlight=None, highlight_name: str = "matches") -> go.Figure:
    """points columns: x, y, `color`, label (hover text, escaped here). A legend always
    (a categorical colouring with one value included); `highlight` (a boolean mask over the
    points) rings those points in a last trace named `highlight_name`."""
    fig = go.Figure()
    values = points[color]
    if pd.api.types.is_float_dtype(values) and np.allclose(values.dropna() % 1, 0):
        values = values.astype("Int64")  # expert ids and layers read as 3, not 3.0
        points = points.assign(**{color: values})
    categorical = color == "expert" or not pd.api.types.is_numeric_dtype(values) \
        or values.nunique() <= 24
    hover = [plot_text(str(t)) for t in points.get("label", pd.Series([""] * len(points)))]
    if categorical:
        for i, (value, sub) in enumerate(points.groupby(color, sort=True)):
            marker_color = expert_color(int(value)) if color == "expert" else expert_color(i)
            fig.add_trace(go.Scattergl(
                x=sub["x"], y=sub["y"], mode="markers", name=plot_text(str(value)),
                marker=dict(size=5, color=marker_color, opacity=0.8),
                text=[hover[j] for j in np.flatnonzero(values.index.isin(sub.index))],
                hovertemplate="%{text}<extra>" + plot_text(str(value)) + "</extra>"))
    else:
        fig.add_trace(go.Scattergl(x=points["x"], y=points["y"], mode="markers", text=hover,
                                   marker=dict(size=5, color=values, colorscale="Viridis",
                                               colorbar=dict(title=color)),
                                   hovertemplate="%{text}<extra></extra>"))
    if highlight is not None and np.asarray(highlight, dtype=bool).any():
        marked = points[np.asarray(highlight, dtype=bool)]
        fig.add_trace(go.Scattergl(
            x=marked["x"], y=marked["y"], mode="markers", name=plot_text(highlight_name),
            marker={"size": 11, "color": "rgba(0,0,0,0)",
                    "line": {"color": "#111111", "width": 2}},
            text=[plot_text(str(t)) for t in marked.get("label", [""] * len(marked))],
            hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=title or f"Points coloured by {color}", height=560,
                      showlegend=True, legend_title_text=plot_text(color.replace("_", " ")),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def headline(summary: dict) -> dict:
    """A run's few headline numbers from `routeviz.metrics.summary(...)`: pooled Focus and
    Cover, mean load CV, starved experts, mean kept fraction, compute saved."""
    out = {}
    pooled = [r for r in summary.get("focus_cover") or [] if r.get("site") == "*"]
    if pooled:
        out["Focus (pooled)"] = float(pooled[0]["focus"])
        out["Cover (pooled)"] = float(pooled[0]["cover"])
    load = summary.get("load") or []
    if load:
        out["mean load CV"] = float(np.mean([site["cv"] for site in load]))
        out["starved experts"] = float(sum(site.get("n_starved", 0) for site in load))
    keep = summary.get("keep") or {}
    kept = [site["kept_fraction"] for site in keep.get("sites") or [] if "kept_fraction" in site]
    if kept:
        out["mean kept fraction"] = float(np.mean(kept))
    exits = summary.get("exits") or {}
    if exits.get("compute_saved") is not None:
        out["compute saved"] = float(exits["compute_saved"])
    return out


def agreement_bars(sites: pd.DataFrame, title: str = "") -> go.Figure:
    """Per site, how often two runs agree: sites columns site, top1_agreement, jaccard (and
    kind: the exit row of `metrics.diff`, site "*", is named by `site_label`)."""
    kinds = sites["kind"] if "kind" in sites else [None] * len(sites)
    labels = [plot_text(site_label(s, k)) for s, k in zip(sites["site"], kinds)]
    fig = go.Figure([
        go.Bar(x=labels, y=sites["top1_agreement"], name="top-1 agreement",
               marker_color=FOCUS_COLOR),
        go.Bar(x=labels, y=sites["jaccard"], name="mean Jaccard of chosen sets",
               marker_color=COVER_COLOR),
    ])
    fig.update_layout(title=title or "Where the two runs route alike", barmode="group",
                      yaxis_range=[0, 1.05], height=340, margin=dict(l=10, r=10, t=40, b=10))
    return fig
