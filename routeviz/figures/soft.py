"""Soft-routing views (Soft MoE): every slot's dispatch weights over an image's patches as
small multiples (Puigcerver et al. draw these; they look like segmentations), and the
top-weighted patches of each slot as image crops."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from routeviz.figures.images import _data_uri


def dispatch_maps(image, grids: list[np.ndarray], labels: list[str], cols: int = 4,
                  panel_px: int = 170, opacity: float = 0.7) -> go.Figure:
    """One panel per slot: `image` (PIL) under its [grid_h, grid_w] dispatch weights
    (each panel scaled to its own largest weight, white = none, dark = most), titled by
    `labels` (e.g. "slot 3 · expert 1")."""
    n = max(len(grids), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    width, height = image.size
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=labels or ["(no dispatch rows)"],
                        horizontal_spacing=0.02, vertical_spacing=0.1)
    source = _data_uri(image)
    for i, grid in enumerate(grids):
        r, c = divmod(i, cols)
        grid_h, grid_w = grid.shape
        dx, dy = width / grid_w, height / grid_h
        top = float(np.nanmax(grid)) if np.isfinite(grid).any() else 1.0
        fig.add_trace(go.Image(source=source, hoverinfo="skip"), row=r + 1, col=c + 1)
        fig.add_trace(go.Heatmap(
            z=grid, x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, zmin=0, zmax=top or 1.0,
            opacity=opacity, showscale=False, colorscale="Purples", hoverongaps=False,
            customdata=np.arange(grid_h * grid_w).reshape(grid_h, grid_w),
            hovertemplate=f"{labels[i] if i < len(labels) else ''}<br>patch %{{customdata}}: "
                          "dispatch weight %{z:.3f}<extra></extra>"), row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False, range=[0, width])
    fig.update_yaxes(visible=False, range=[height, 0])
    for i in range(len(grids)):  # square panels: each y axis follows its x axis
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    fig.update_layout(title="Dispatch weights of every slot over the patches (darker: the slot "
                            "takes more of that patch; each slot's weights sum to 1)",
                      title_font_size=14, height=80 + panel_px * rows,
                      width=max(460, 20 + panel_px * cols), margin={"l": 10, "r": 10, "t": 80, "b": 10})
    return fig
