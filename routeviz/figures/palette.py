"""Colours shared by every figure: one stable colour per expert id, two for kept/dropped."""

from __future__ import annotations

import math

# 24 distinguishable colours (plotly Dark24 order, reordered so neighbours differ).
EXPERT_COLORS = (
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86", "#EB663B",
    "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16",
    "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038", "#222A2A",
)
KEPT_COLOR = "#1CA71C"
DROPPED_COLOR = "#D3D3D3"
MERGED_COLOR = "#F2A900"
MISSING_COLOR = "#F4F4F4"


def expert_color(expert) -> str:
    """The colour of expert `expert` (cycles after 24); grey for none."""
    if expert is None or math.isnan(float(expert)) or int(expert) < 0:
        return MISSING_COLOR
    return EXPERT_COLORS[int(expert) % len(EXPERT_COLORS)]


def discrete_colorscale(n: int) -> list:
    """A plotly colorscale mapping integer z in [0, n-1] to one flat colour each."""
    n = max(int(n), 1)
    if n == 1:
        return [[0.0, expert_color(0)], [1.0, expert_color(0)]]
    scale = []
    for i in range(n):
        lo, hi = i / n, (i + 1) / n
        scale += [[lo, expert_color(i)], [hi, expert_color(i)]]
    return scale


def text_color_on(hex_color: str) -> str:
    """Black or white, whichever reads better on `hex_color`."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#FFFFFF"
