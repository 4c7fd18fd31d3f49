"""Run-level routing views: expert load per site, the layer-to-layer path Sankey, exit-depth
histograms, kept fraction per layer."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from routeviz.figures.data import plot_text, short_site
from routeviz.figures.labels import EXIT_AXIS
from routeviz.figures.palette import KEPT_COLOR, expert_color

STARVED_COLOR = "#D62728"


def load_bars(load: pd.DataFrame, max_sites: int = 32) -> go.Figure:
    """Expert load share per site. load columns: site, expert, share, starved (bool)."""
    sites = list(dict.fromkeys(load["site"].astype(str)))[:max_sites]
    fig = go.Figure()
    for site in sites:
        sub = load[load["site"].astype(str) == site].sort_values("expert")
        starved = sub["starved"].astype(bool).tolist() if "starved" in sub else [False] * len(sub)
        colors = [STARVED_COLOR if s else expert_color(e) for e, s in zip(sub["expert"], starved)]
        name = plot_text(short_site(site))
        visible = True if site == sites[0] else "legendonly"
        # plotly's legend draws a bar trace's swatch from marker colours it reads as one
        # colour (per-bar arrays log "Invalid color specifier: Array(n)"): the bars stay out
        # of the legend and a one-colour marker trace of the same group stands for the site
        fig.add_trace(go.Bar(
            x=[f"e{int(e)}" for e in sub["expert"]], y=sub["share"], name=name,
            legendgroup=site, showlegend=False, visible=visible,
            marker=dict(color=colors, line=dict(color="black",
                                                width=[2 if s else 0 for s in starved])),
            text=["starved" if s else "" for s in starved], textposition="outside",
            hovertemplate="%{x}: %{y:.1%}<extra>" + name + "</extra>"))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name,
                                 legendgroup=site, visible=visible, hoverinfo="skip",
                                 marker=dict(color="#555555", symbol="square", size=10)))
    fig.update_layout(title="Expert load share per site (red = starved); pick sites in the legend",
                      yaxis_tickformat=".0%", barmode="group", height=380,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def load_matrix(load: pd.DataFrame) -> go.Figure:
    """Sites down, experts across: load share as a heatmap (all sites at once)."""
    pivot = load.pivot_table(index="site", columns="expert", values="share", aggfunc="sum",
                             observed=True).fillna(0.0)
    fig = go.Figure(go.Heatmap(z=pivot.to_numpy(), x=[f"e{int(e)}" for e in pivot.columns],
                               y=[plot_text(short_site(s)) for s in pivot.index],
                               colorscale="Blues", colorbar=dict(title="share", tickformat=".0%"),
                               hovertemplate="%{y} %{x}: %{z:.1%}<extra></extra>"))
    fig.update_layout(title="Load share, every site", height=max(240, 60 + 22 * len(pivot)),
                      margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed")
    return fig


def path_sankey(transitions: pd.DataFrame, max_links: int = 400) -> go.Figure:
    """Top-1 expert at one site -> top-1 expert at the next site; one column per site,
    experts stacked by id, the site named above its column.

    transitions columns: from_site, from_expert, to_site, to_expert, count
    (`routeviz.metrics.paths(...).transitions`; from_layer/to_layer order the columns).
    """
    t = transitions.sort_values("count", ascending=False).head(max_links)
    src = list(zip(t["from_site"].astype(str), t["from_expert"].astype(int)))
    dst = list(zip(t["to_site"].astype(str), t["to_expert"].astype(int)))
    sites = _site_order(transitions)
    column = {site: i for i, site in enumerate(sites)}
    n_experts = int(max(transitions["from_expert"].max(), transitions["to_expert"].max())) + 1
    nodes: dict[tuple, int] = {}
    for key in sorted(set(src + dst), key=lambda k: (column[k[0]], k[1])):
        nodes[key] = len(nodes)
    span = max(len(sites) - 1, 1)
    xs = [0.001 + 0.998 * column[s] / span for s, _ in nodes]
    ys = [0.02 + 0.93 * (e + 0.5) / n_experts for _, e in nodes]
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node=dict(label=[f"e{e}" for _, e in nodes], color=[expert_color(e) for _, e in nodes],
                  x=xs, y=ys, pad=6, thickness=14,
                  customdata=[plot_text(short_site(s)) for s, _ in nodes],
                  hovertemplate="%{customdata} %{label}: %{value} tokens<extra></extra>"),
        link=dict(source=[nodes[key] for key in src], target=[nodes[key] for key in dst],
                  value=t["count"].tolist(), color=[_alpha(expert_color(e)) for _, e in src])))
    for site in sites:
        fig.add_annotation(x=column[site] / span, y=1.06, xref="paper", yref="paper",
                           text=plot_text(short_site(site)), showarrow=False,
                           font=dict(size=12))
    title = "Token paths: top-1 expert, site to site"
    if len(transitions) > max_links:
        title += f" (the {max_links} largest of {len(transitions)} links)"
    fig.update_layout(title=title, height=560, margin=dict(l=10, r=10, t=70, b=10))
    return fig


def _site_order(transitions: pd.DataFrame) -> list[str]:
    layer = {}
    for site_col, layer_col in (("from_site", "from_layer"), ("to_site", "to_layer")):
        for site, depth in zip(transitions[site_col].astype(str),
                               transitions[layer_col] if layer_col in transitions
                               else [0] * len(transitions)):
            layer[site] = min(layer.get(site, depth), depth)
    firsts = set(transitions["from_site"].astype(str))
    # sites that only receive come after; ties broken by layer, then name
    return sorted(layer, key=lambda s: (layer[s], s not in firsts, s))


def _alpha(hex_color: str, a: float = 0.35) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{a})"


def exit_histogram(exits: pd.DataFrame, n_layers: int | None = None) -> go.Figure:
    """exits columns: layer (the exit layer), count, optionally fraction (then bars show
    shares, so tokens and examples compare) and unit (token / example)."""
    fig = go.Figure()
    groups = exits.groupby("unit") if "unit" in exits else [("units", exits)]
    share = "fraction" in exits
    for unit, sub in groups:
        if not len(sub):
            continue
        fig.add_trace(go.Bar(
            x=sub["layer"], y=sub["fraction"] if share else sub["count"], name=str(unit),
            customdata=sub["count"],
            hovertemplate="exit at layer %{x}: %{customdata} (%{y:.1%})<extra></extra>"
            if share else "exit at layer %{x}: %{y}<extra></extra>"))
    fig.update_layout(title="Exit depth: where units stopped computing", barmode="group",
                      height=320, margin=dict(l=10, r=10, t=40, b=10))
    if share:
        fig.update_yaxes(tickformat=".0%", title="share of units")
        return fig.update_xaxes(title=EXIT_AXIS, dtick=1,
                                range=[-0.5, n_layers - 0.5] if n_layers else None)
    fig.update_xaxes(title=EXIT_AXIS, dtick=1,
                     range=[-0.5, n_layers - 0.5] if n_layers else None)
    fig.update_yaxes(title="count")
    return fig


def kept_fraction(keep: pd.DataFrame) -> go.Figure:
    """keep columns: site, layer, kept_fraction (of the tokens that site saw)."""
    keep = keep.sort_values(["layer", "site"])
    fig = go.Figure(go.Scatter(
        x=[plot_text(short_site(s)) for s in keep["site"]], y=keep["kept_fraction"],
        mode="lines+markers", line=dict(color=KEPT_COLOR),
        hovertemplate="%{x}: %{y:.1%} kept<extra></extra>"))
    fig.update_layout(title="Kept-token fraction per layer", yaxis_tickformat=".0%",
                      yaxis_range=[0, 1.05], height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig
