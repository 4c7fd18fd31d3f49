"""Image views: the image with a patch grid coloured by expert, kept/dropped patches per
layer as small multiples, and exit depth per patch."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from routeviz.figures.labels import exit_label
from routeviz.figures.palette import (
    DROPPED_COLOR,
    KEPT_COLOR,
    MERGED_COLOR,
    MISSING_COLOR,
    discrete_colorscale,
)

GONE_BEFORE = "faded: no decision here (dropped, merged or exited before this site)"


def _data_uri(image) -> str:
    """PNG for small (pixel-art) images, JPEG for photo-sized ones: a quarter of the bytes."""
    buf = io.BytesIO()
    fmt = "PNG" if max(image.size) <= 256 else "JPEG"
    image.convert("RGB").save(buf, format=fmt, quality=85)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def patch_overlay(image, patch_grid: np.ndarray, n_experts: int, title: str = "",
                  opacity: float = 0.45, cards=None, clickable: bool = False) -> go.Figure:
    """`image` (PIL, display size) under a [grid_h, grid_w] grid of expert ids (NaN = none),
    drawn at the image's own aspect ratio and size. The image is drawn in grey, so the
    expert tint reads on a colourful photo; patches with no decision here (NaN: dropped,
    merged or exited before this site) are faded out and named in the hover.

    cards: per patch (row-major), its hover text (escaped HTML lines joined by <br>: its
    experts, kept/merged, exit, tags); without them a patch shows its index and expert."""
    width, height = image.size
    grid_h, grid_w = patch_grid.shape
    dx, dy = width / grid_w, height / grid_h
    n = max(int(n_experts), 1)
    fig = go.Figure()
    fig.add_trace(go.Image(source=_data_uri(image.convert("L")), hoverinfo="skip"))
    rows, cols = np.indices(patch_grid.shape)
    index = rows * grid_w + cols  # [grid_h, grid_w] patch number, row-major
    hover = dict(customdata=index, hoverongaps=False,
                 hovertemplate="patch %{customdata}: expert %{z}<extra></extra>")
    if cards is not None:
        text = [[cards[i] if i < len(cards) else f"patch {i}" for i in row] for row in index]
        # every patch answers, also one with no expert here (dropped or merged before)
        hover = dict(hovertemplate="%{text}<extra></extra>", hoverongaps=True,
                     **({} if clickable else {"text": text}))  # else the click layer's
    fig.add_trace(go.Heatmap(
        z=patch_grid, x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, opacity=opacity, xgap=1, ygap=1,
        colorscale=discrete_colorscale(n), zmin=-0.5, zmax=n - 0.5,
        name="patches", colorbar=dict(title="expert", tickvals=list(range(n))), **hover))
    gone = np.isnan(patch_grid)
    if gone.any():  # no decision here: faded in the reserved "none" colour (the page says so)
        fig.add_trace(go.Heatmap(
            z=np.where(gone, 1.0, np.nan), x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, xgap=1, ygap=1,
            colorscale=[[0, MISSING_COLOR], [1, MISSING_COLOR]], opacity=0.8, showscale=False,
            hoverinfo="skip", name=GONE_BEFORE))
    if grid_h <= 64 and grid_w <= 64:  # patch borders: one path, not a shape per line
        xs, ys = [], []  # (plotly draws each layout shape on its own, ~1 ms apiece)
        for c in range(1, grid_w):
            xs += [c * dx, c * dx, None]
            ys += [0, height, None]
        for r in range(1, grid_h):
            xs += [0, width, None]
            ys += [r * dy, r * dy, None]
        borders = go.Scatter(x=xs, y=ys, mode="lines", name="patch borders", hoverinfo="skip",
                             showlegend=False, line=dict(color="rgba(255,255,255,0.7)", width=1))
        fig.add_trace(borders)  # before the click layer, which must be on top
    if clickable:  # a click on a patch selects it (tokens.click_layer)
        from routeviz.figures.tokens import click_layer

        shown = [[f"patch {i}: expert {'–' if np.isnan(z) else int(z)}"
                  for i, z in zip(row_i, row_z)] for row_i, row_z in zip(index, patch_grid)]
        if cards is not None:
            shown = text
        click_layer(fig, (cols * dx + dx / 2).ravel(), (rows * dy + dy / 2).ravel(),
                    index.ravel(), [t for row in shown for t in row],
                    size=max(4, int(min(dx, dy))))
        fig.data[1].update(hoverinfo="skip", hovertemplate=None)  # the click layer answers
    fig.update_xaxes(visible=False, range=[0, width])
    fig.update_yaxes(visible=False, range=[height, 0], scaleanchor="x")
    fig.update_layout(title=title or "Patches coloured by top-1 expert",
                      width=width + 20 + 110, height=height + 50,  # image + colorbar, title
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def kept_small_multiples(grids: list[np.ndarray], labels: list[str], max_panels: int = 24,
                         cols: int = 6, panel_px: int = 170) -> go.Figure:
    """One small [grid_h, grid_w] panel per keep or merge site (values from
    `data.token_fate`): green still in, grey dropped there, amber merged there, blank where
    the patch was already gone."""
    grids, labels = grids[:max_panels], labels[:max_panels]
    n = max(len(grids), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=labels or ["(no keep decisions)"],
                        horizontal_spacing=0.02, vertical_spacing=0.08)
    for i, grid in enumerate(grids):
        r, c = divmod(i, cols)
        fig.add_trace(go.Heatmap(z=grid, zmin=0, zmax=1, showscale=False, xgap=1, ygap=1,
                                 colorscale=[[0, DROPPED_COLOR], [0.5, MERGED_COLOR],
                                             [1, KEPT_COLOR]],
                                 hoverongaps=False,
                                 hovertemplate="row %{y}, col %{x}: %{z}<extra></extra>"),
                      row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for i in range(len(grids)):  # square cells: each y axis follows its x axis
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    fig.update_layout(title="Patches kept (green), dropped (grey) or merged (amber), per layer",
                      title_font_size=14, height=70 + panel_px * rows,
                      width=max(460, 20 + panel_px * cols),
                      margin=dict(l=10, r=10, t=70, b=10))
    return fig


def exit_depth_grid(exit_grid: np.ndarray, n_layers: int | None = None,
                    cell_px: int = 24) -> go.Figure:
    """[grid_h, grid_w] exit layer per patch, numbered as `labels.exit_label` says."""
    top = n_layers - 1 if n_layers else (np.nanmax(exit_grid) if np.isfinite(exit_grid).any() else 1)
    grid_h, grid_w = exit_grid.shape
    rows, cols = np.indices(exit_grid.shape)
    text = [[f"patch {r * grid_w + c}: exits at {exit_label(exit_grid[r, c], n_layers)}"
             for r, c in zip(row_r, row_c)] for row_r, row_c in zip(rows, cols)]
    fig = go.Figure(go.Heatmap(z=exit_grid, zmin=0, zmax=top, colorscale="Blues", xgap=1,
                               ygap=1, hoverongaps=False, text=text,
                               colorbar=dict(title="exit layer<br>(0-based)"),
                               hovertemplate="%{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False, constrain="domain")
    side = max(160, cell_px * max(grid_h, grid_w))
    fig.update_layout(title="Exit depth per patch", height=side + 60,
                      width=int(side * grid_w / max(grid_h, 1)) + 140,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig
