"""A series over training steps: one line per site for a metric, and expert identity
across steps (`routeviz.metrics.series.timeline` / `routeviz.metrics.identity.identity`)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from routeviz.figures.data import plot_text, short_site

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


def metric_lines(timeline: pd.DataFrame, metric: str, max_sites: int = MAX_SITES) -> go.Figure:
    """One line per site (the pooled "*" line thick and black) of `metric` over steps.
    timeline columns: step, site, metric, value."""
    rows = timeline[timeline["metric"] == metric]
    sites = list(dict.fromkeys(rows["site"].astype(str)))
    shown = sites[:max_sites]
    fig = go.Figure()
    for site in shown:
        sub = rows[rows["site"].astype(str) == site].sort_values("step")
        pooled = site == "*"
        name = "all sites (pooled)" if pooled else plot_text(short_site(site))
        fig.add_trace(go.Scatter(
            x=sub["step"], y=sub["value"], mode="lines+markers", name=name,
            line=dict(width=4 if pooled else 1.5, color="black" if pooled else None),
            hovertemplate="step %{x}: %{y:.3f}<extra>" + name + "</extra>"))
    title = METRIC_TITLES.get(metric, plot_text(metric))
    if len(sites) > len(shown):
        title += f" ({len(shown)} of {len(sites)} sites drawn)"
    fig.update_layout(title=title, xaxis_title="training step", height=340,
                      margin=dict(l=10, r=10, t=40, b=10))
    if metric in UNIT_RANGE:
        fig.update_yaxes(range=[0, 1.05])
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
