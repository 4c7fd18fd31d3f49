"""A series over training steps: one line per site for a metric, and expert identity
across steps (`routeviz.metrics.series.timeline` / `routeviz.metrics.identity.identity`)."""

from __future__ import annotations

import textwrap

import pandas as pd
import plotly.graph_objects as go

from routeviz.figures.analysis import CHANCE_COLOR
from routeviz.figures.data import plot_text, short_site
from routeviz.figures.labels import site_label

METRIC_TITLES = {
    "saturation_top1": "Router saturation, top-1 agreement with the last step",
    "saturation_overlap": "Router saturation, share of top-k kept at the last step",
    "load_cv": "Load CV (std / mean of expert counts)",
    "maxvio": "MaxVio ((max − mean) / mean of expert counts)",
    "focus": "Focus",
    "cover": "Cover",
    "entropy": "Routing entropy (nats; router logits where recorded, else top-k weights)",
}
UNIT_RANGE = ("saturation_top1", "saturation_overlap", "focus", "cover")
MAX_SITES = 24  # lines drawn at most; the pooled "*" line always among them
TITLE_CHARS = 40  # a title line at most: fits a half-page chart down to a ~1100 px window


def metric_lines(timeline: pd.DataFrame, metric: str, max_sites: int = MAX_SITES) -> go.Figure:
    """One line per site (the pooled "*" line thick and black) of `metric` over steps.
    timeline columns: step, site, metric, value. Where the frame has `<metric>_lo` and
    `<metric>_hi` rows (`series.timeline(..., chance=N)`), the pooled line's chance band
    is drawn under it as a grey area."""
    rows = timeline[timeline["metric"] == metric]
    sites = list(dict.fromkeys(rows["site"].astype(str)))
    shown = sites[:max_sites]
    fig = go.Figure()
    band = _pooled_band(timeline, metric)
    if len(band):
        fig.add_trace(go.Scatter(  # the lower edge, then the upper one filled down to it
            x=band["step"], y=band["lo"], mode="lines", line=dict(width=0), showlegend=False,
            legendgroup="chance", hoverinfo="skip"))
        fig.add_trace(go.Scatter(
            x=band["step"], y=band["hi"], mode="lines", line=dict(width=0), fill="tonexty",
            fillcolor=CHANCE_COLOR, name="chance band (pooled)",
            legendgroup="chance", customdata=band[["lo", "hi"]].to_numpy(),
            hovertemplate="step %{x}: chance %{customdata[0]:.3f}–%{customdata[1]:.3f}"
                          "<extra>chance band</extra>"))
    for site in shown:
        sub = rows[rows["site"].astype(str) == site].sort_values("step")
        pooled = site == "*"
        name = plot_text(site_label(site))
        fig.add_trace(go.Scatter(
            x=sub["step"], y=sub["value"], mode="lines+markers", name=name,
            line=dict(width=4 if pooled else 1.5, color="black" if pooled else None),
            hovertemplate="step %{x}: %{y:.3f}<extra>" + name + "</extra>"))
    title = METRIC_TITLES.get(metric, plot_text(metric))
    if len(sites) > len(shown):
        title += f" ({len(shown)} of {len(sites)} sites drawn)"
    fig.update_layout(xaxis_title="training step", height=340)
    wrapped_title(fig, title)
    if metric in UNIT_RANGE:
        fig.update_yaxes(range=[0, 1.05])
    return fig


def _pooled_band(timeline: pd.DataFrame, metric: str) -> pd.DataFrame:
    """step, lo, hi of the pooled site's `<metric>_lo` / `<metric>_hi` rows (none: empty)."""
    pooled = timeline[timeline["site"].astype(str) == "*"]
    ends = [pooled[pooled["metric"] == f"{metric}_{end}"].set_index("step")["value"]
            .rename(end) for end in ("lo", "hi")]
    return pd.concat(ends, axis=1, join="inner").sort_index().reset_index()


def wrapped_title(fig: go.Figure, title: str, width: int = TITLE_CHARS) -> go.Figure:
    """Set `title`, broken into lines of at most `width` characters, with the top margin
    made tall enough for them: a figure in half a page clipped a one-line title at its
    right edge (plotly does not wrap titles)."""
    lines = textwrap.wrap(title, width) or [""]
    fig.update_layout(title=dict(text="<br>".join(lines), yref="paper", y=1,
                                 yanchor="bottom", pad=dict(b=8)),
                      margin=dict(l=10, r=10, t=20 + 22 * len(lines), b=10))
    return fig


def identity_heatmap(identity: pd.DataFrame, site: str) -> go.Figure:
    """Experts down, step transitions across: the expert each one became at the next step
    (cell text), coloured by the match's similarity. identity columns: site, from_step,
    to_step, expert, matched, similarity."""
    rows = identity[identity["site"].astype(str) == site]
    rows = rows.assign(pair=[f"{a}→{b}" for a, b in zip(rows["from_step"], rows["to_step"])])
    pairs = list(dict.fromkeys(rows["pair"]))
    sim = rows.pivot_table(index="expert", columns="pair", values="similarity",
                           aggfunc="first").reindex(columns=pairs)
    matched = rows.pivot_table(index="expert", columns="pair", values="matched",
                               aggfunc="first").reindex(columns=pairs)
    text = [["" if v != v else ("–" if v < 0 else f"→ e{int(v)}") for v in row]
            for row in matched.to_numpy()]
    fig = go.Figure(go.Heatmap(
        z=sim.to_numpy(), x=pairs, y=[f"e{int(e)}" for e in sim.index], text=text,
        texttemplate="%{text}", colorscale="Greens", zmin=0, zmax=1,
        colorbar=dict(title="cosine"),
        hovertemplate="%{y} at %{x}: %{text}, similarity %{z:.2f}<extra></extra>"))
    fig.update_layout(title=f"Expert identity at {plot_text(short_site(site))}: "
                            "which expert each became at the next step",
                      height=max(260, 80 + 24 * len(sim)), margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed")
    return fig
