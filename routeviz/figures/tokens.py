"""Text views: token chips coloured by expert, and the token × layer heatmap.

Token text is user data: every string that reaches HTML goes through `html.escape`.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from routeviz.figures.data import GRID_VALUES, aggregate_tokens, plot_text, show_token
from routeviz.figures.palette import (
    DROPPED_COLOR,
    EXITED_COLOR,
    KEPT_COLOR,
    MERGED_COLOR,
    MISSING_COLOR,
    discrete_colorscale,
    expert_color,
    text_color_on,
)

CHIP_STYLE = ("display:inline-block;margin:2px 1px;padding:1px 4px;border-radius:4px;"
              "font-family:monospace;font-size:13px;white-space:pre;")
# one rule for every chip, so each of 2,000 chips carries only its colours
CHIP_CSS = f"<style>.rv-chip{{{CHIP_STYLE}}}</style>"


def chip_color(value, mode: str) -> str:
    if mode == "kept":
        if value is None or np.isnan(float(value)):
            return MISSING_COLOR
        return {1.0: KEPT_COLOR, 0.5: MERGED_COLOR}.get(float(value), DROPPED_COLOR)
    return expert_color(value)


def token_chips_html(tokens, values, cards=None, mode: str = "expert", limit: int = 2000) -> str:
    """A wrapped line of chips, one per token, coloured by `values` (expert id, or 1/0 kept).

    cards: per token, the hover text (HTML lines joined with <br>; shown as a tooltip with
    tags removed). At most `limit` chips are drawn.
    """
    parts = []
    for i, token in enumerate(tokens[:limit]):
        value = values[i] if i < len(values) else None
        color = chip_color(value, mode)
        title = ""
        if cards is not None:
            title = _tooltip(cards[i])
        label = html.escape(show_token(token))
        parts.append(f'<span class="rv-chip" title="{title}" '
                     f'style="background:{color};color:{text_color_on(color)}">{label}</span>')
    return f'{CHIP_CSS}<div class="rv-chips" style="line-height:1.9">{"".join(parts)}</div>'


def _tooltip(card: str) -> str:
    """A route card (escaped HTML with <b> and <br>) as plain tooltip text, re-escaped for
    an attribute."""
    plain = card.replace("<br>", "\n").replace("<b>", "").replace("</b>", "")
    plain = html.unescape(plain)
    return html.escape(plain, quote=True)


def legend_html(n_experts: int, mode: str = "expert") -> str:
    if mode == "kept":
        items = [("kept", KEPT_COLOR), ("dropped", DROPPED_COLOR), ("merged", MERGED_COLOR),
                 ("gone earlier", MISSING_COLOR)]
    else:
        items = [(f"e{i}", expert_color(i)) for i in range(min(int(n_experts), 64))]
    spans = [f'<span class="rv-chip" style="background:{c};color:{text_color_on(c)}">'
             f"{html.escape(name)}</span>" for name, c in items]
    return f'{CHIP_CSS}<div class="rv-legend">{"".join(spans)}</div>'


STATES = (("kept / computed", KEPT_COLOR), ("dropped (pruned) here", DROPPED_COLOR),
          ("merged into another token here", MERGED_COLOR),
          ("skipped: gone earlier, exited, or no decision here", MISSING_COLOR))


def states_legend_html(exited: bool = False) -> str:
    """What every token state looks like, chips and heatmaps alike (one legend for all)."""
    items = list(STATES)
    if exited:
        items.insert(3, ("exited (no longer computed)", EXITED_COLOR))
    spans = [f'<span class="rv-chip" style="background:{c};color:{text_color_on(c)}">'
             f"{html.escape(name)}</span>" for name, c in items]
    return (f'{CHIP_CSS}<div class="rv-legend rv-states"><b>States:</b> '
            f'{"".join(spans)}</div>')


def tag_chips_html(tokens, tag_values, cards=None, limit: int = 2000) -> str:
    """A row of chips, one per token, showing and coloured by its tag value (None: no tag)."""
    order = list(dict.fromkeys(v for v in tag_values if v is not None))
    parts = []
    for i, token in enumerate(tokens[:limit]):
        value = tag_values[i] if i < len(tag_values) else None
        color = expert_color(order.index(value)) if value is not None else MISSING_COLOR
        title = _tooltip(cards[i]) if cards is not None else ""
        label = html.escape(f"{show_token(token)} · {value if value is not None else '—'}")
        parts.append(f'<span class="rv-chip" title="{title}" '
                     f'style="background:{color};color:{text_color_on(color)}">{label}</span>')
    return f'{CHIP_CSS}<div class="rv-chips rv-tags" style="line-height:1.9">{"".join(parts)}</div>'


def click_layer(fig: go.Figure, x, y, index, text=None, size: int = 18,
                extra: str = "") -> go.Figure:
    """Make the cells of a heatmap (or image) under `fig` clickable: plotly selects points
    only on traces like scatter, not heatmaps, so one invisible square marker sits on each
    cell, carrying its token/patch `index` as customdata (and the cell's hover `text`, the
    heatmap's own hover then turned off). Streamlit's `on_select` reports the clicked one."""
    # numpy arrays: plotly checks a list element by element (a 4-site, 80-token page: 320
    # cards, ~15 ms of a click; issue 25), an array at once; the points and cards are the same
    hover = (dict(text=np.asarray(list(text), dtype=object),
                  hovertemplate=f"%{{text}}<extra>{extra}</extra>")
             if text is not None else dict(hoverinfo="none"))
    fig.add_trace(go.Scatter(x=np.asarray(x), y=np.asarray(list(y), dtype=object),
                             customdata=np.asarray(index, dtype=np.int64),
                             mode="markers", name="click", showlegend=False,
                             marker=dict(symbol="square", size=size, opacity=0),
                             unselected=dict(marker=dict(opacity=0)),
                             selected=dict(marker=dict(opacity=0)), **hover))
    return fig


def token_heatmap(grid: np.ndarray, columns: list[str], tokens: list[str], value: str,
                  cards=None, n_experts: int | None = None, max_tokens: int = 400,
                  first: int = 0, clickable: bool = False) -> go.Figure:
    """Tokens across, sites (or layers) down; binned when there are more than `max_tokens`.

    grid: [tokens, columns] from `data.token_grid`; first: the index of its first token (a
    page of a longer text), so labels name tokens as the rest of the page does; clickable:
    a click on a cell selects it (`click_layer`), unless tokens are binned.
    """
    categorical = value == "expert"
    binned, starts = aggregate_tokens(grid, max_tokens, categorical=categorical)
    aggregated = len(starts) < grid.shape[0]
    z = binned.T  # [columns, tokens]
    if aggregated:
        x_labels = [f"{first + s}–{first + min(s + starts[1] - starts[0], grid.shape[0]) - 1}"
                    for s in starts]
        hover = None
    else:
        x_labels = [f"{first + i}:{plot_text(show_token(t)[:16])}" for i, t in enumerate(tokens)]
        hover = [[cards[i] if cards else x_labels[i] for i in range(len(tokens))]
                 for _ in columns]
    kwargs = dict(z=z, x=list(range(len(starts))), y=columns, xgap=1, ygap=1,
                  hoverongaps=False)
    clickable = clickable and not aggregated
    if hover is not None and not clickable:  # clickable: the click layer carries the hover
        kwargs.update(text=hover, hovertemplate="%{text}<extra>%{y}</extra>")
    elif not clickable:  # binned: the bin's tokens and its value
        kwargs.update(customdata=[x_labels] * len(columns),
                      hovertemplate="tokens %{customdata}<br>%{y}: %{z}<extra></extra>")
    if categorical:
        n = int(n_experts or (np.nanmax(grid) + 1 if np.isfinite(grid).any() else 1))
        kwargs.update(colorscale=discrete_colorscale(n), zmin=-0.5, zmax=n - 0.5,
                      colorbar=dict(title="expert", tickvals=list(range(n)), lenmode="pixels",
                                    len=max(120, min(18 * n, 400))))
    elif value == "kept":
        kwargs.update(colorscale=[[0, DROPPED_COLOR], [0.5, MERGED_COLOR], [1, KEPT_COLOR]],
                      zmin=0, zmax=1, colorbar=dict(title="", tickvals=[0, 0.5, 1],
                                                    ticktext=["dropped", "merged", "kept"]))
    elif value == "exit":
        kwargs.update(colorscale=[[0, EXITED_COLOR], [1, KEPT_COLOR]], zmin=0, zmax=1,
                      colorbar=dict(title="", tickvals=[0, 1], ticktext=["exited", "computed"]))
    else:
        kwargs.update(colorscale="Viridis", colorbar=dict(title="weight"))
    fig = go.Figure(go.Heatmap(**kwargs))
    if clickable:
        xs, ys = np.meshgrid(np.arange(len(starts)), np.arange(len(columns)))  # [columns, tokens]
        click_layer(fig, xs.ravel(), [columns[j] for j in ys.ravel()], first + xs.ravel(),
                    [row[i] for row in hover for i in range(len(starts))], extra="%{y}")
        fig.data[0].update(hoverinfo="skip")  # the click layer answers
    title = f"Token × layer: {GRID_VALUES[value]}"
    if aggregated:
        title += f" (aggregated: {grid.shape[0]} tokens in {len(starts)} bins)"
    tickvals = list(range(len(starts)))
    step = max(1, len(starts) // 100)
    label_px = max(len(t) for t in x_labels[::step]) * 7 if x_labels else 40  # rotated ticks
    # rows tall enough to read, whatever the number of sites; labels below, not clipped.
    # Margins are reserved here, not by plotly's automargin: that measures every tick label
    # and draws the figure twice, half of its time in the browser; with the room reserved,
    # labels need no overflow check either (another label-by-label measure). Issue 25:
    # 499 -> 134 ms a render in Chromium.
    bottom = min(label_px, 160) + 40  # the rotated token labels and the axis title
    left = max((len(str(c)) for c in columns), default=4) * 7 + 40  # site labels and title
    fig.update_layout(title=title, height=90 + min(label_px, 160) + 34 * max(len(columns), 2),
                      margin=dict(l=left, r=10, t=40, b=bottom))
    fig.update_xaxes(tickvals=tickvals[::step], ticktext=x_labels[::step], tickangle=-90,
                     tickfont=dict(size=11), automargin=False, ticklabeloverflow="allow",
                     title="bins of tokens" if aggregated else "token")
    fig.update_yaxes(autorange="reversed", title="site" if value != "exit" else "layer",
                     automargin=False, ticklabeloverflow="allow")
    return fig
