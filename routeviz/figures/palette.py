"""Colours shared by every figure: one stable colour per expert id, and reserved colours for
token states (kept, dropped, merged, exited, no decision) that no expert colour resembles.

The expert colours were picked greedily for the largest smallest CIEDE2000 distance (the
first 16 are at least 20 apart, all 24 at least 16; the old plotly Dark24 order had two
magentas 9 apart), from saturated candidates at least 20 away from every reserved colour;
`tests/test_figures_palette.py` checks both with `delta_e`.
"""

from __future__ import annotations

import math

EXPERT_COLORS = (
    "#0476AE", "#E0E006", "#F91F7A", "#7C5403", "#63E9E9", "#4A037C", "#EFAF8F", "#1D6346",
    "#B49CE2", "#7C0317", "#1FF97A", "#E03C06", "#B11FF9", "#8A8A28", "#83BFFC", "#169C9C",
    "#9C1664", "#104070", "#EF8FB7", "#57631D", "#1F1FF9", "#FB51EC", "#C5E29C", "#636EE9",
)
# token states: reserved, never an expert's colour
KEPT_COLOR = "#1A9850"  # kept / still computed
DROPPED_COLOR = "#C8C8C8"  # dropped (pruned) here
MERGED_COLOR = "#F2A900"  # merged into another token here
EXITED_COLOR = "#5A5A5A"  # exited: no longer computed
MISSING_COLOR = "#F4F4F4"  # no decision here (gone earlier, or the site did not see it)
RESERVED_COLORS = {"kept": KEPT_COLOR, "dropped": DROPPED_COLOR, "merged": MERGED_COLOR,
                   "exited": EXITED_COLOR, "none": MISSING_COLOR}


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


def _lab(hex_color: str) -> tuple[float, float, float]:
    """sRGB `#RRGGBB` -> CIELAB (D65)."""
    linear = []
    for i in (1, 3, 5):
        c = int(hex_color[i:i + 2], 16) / 255
        linear.append(((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92)
    r, g, b = linear
    xyz = ((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047,
           0.2126 * r + 0.7152 * g + 0.0722 * b,
           (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883)
    fx, fy, fz = (v ** (1 / 3) if v > 0.008856 else 7.787 * v + 16 / 116 for v in xyz)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e(color_a: str, color_b: str) -> float:
    """CIEDE2000 distance of two `#RRGGBB` colours (about 2: just noticeable; 20: distinct)."""
    (l1, a1, b1), (l2, a2, b2) = _lab(color_a), _lab(color_b)
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean ** 7 / (c_mean ** 7 + 25 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = math.hypot(a1, b1), math.hypot(a2, b2)
    h1, h2 = (math.degrees(math.atan2(b, a)) % 360 for a, b in ((a1, b1), (a2, b2)))
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    d_hue = 2 * math.sqrt(c1 * c2) * math.sin(math.radians(dh / 2))
    l_bar, c_bar = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        h_bar = h1 + h2
    elif abs(h1 - h2) <= 180:
        h_bar = (h1 + h2) / 2
    else:
        h_bar = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_bar - 30)) + 0.24 * math.cos(math.radians(2 * h_bar))
         + 0.32 * math.cos(math.radians(3 * h_bar + 6))
         - 0.20 * math.cos(math.radians(4 * h_bar - 63)))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_bar, 1 + 0.015 * c_bar * t
    r_t = (-2 * math.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7))
           * math.sin(math.radians(60 * math.exp(-((h_bar - 275) / 25) ** 2))))
    dl, dc, dhh = (l2 - l1) / s_l, (c2 - c1) / s_c, d_hue / s_h
    return math.sqrt(dl ** 2 + dc ** 2 + dhh ** 2 + r_t * dc * dhh)
