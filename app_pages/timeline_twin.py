"""Timeline: one series beside another of the same store, e.g. a supervised DAE-Syn run next
to its unsupervised twin (`dae-syn-top-k-sup10` and `dae-syn-top-k`): pooled Focus and Cover
of both over their steps, in one figure."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

NONE = "(none)"
SHOWN = ("focus", "cover")
DASH = {"focus": "solid", "cover": "dot"}


def twin_of(series: str, names: list[str]) -> str | None:
    """The series whose name is `series` without a `-sup<P>` suffix (or with one, if
    `series` has none), when the store has it."""
    import re

    base = re.sub(r"-sup\d+$", "", series)
    if base != series and base in names:
        return base
    supervised = [n for n in names if re.fullmatch(re.escape(series) + r"-sup\d+", n)]
    return supervised[0] if supervised else None


def beside(frames: dict) -> go.Figure:
    """frames: {series: its timeline frame}; pooled (site *) Focus and Cover per step."""
    fig = go.Figure()
    for series, frame in frames.items():
        pooled = frame[(frame.site == "*") & frame.metric.isin(SHOWN)]
        for metric, rows in pooled.groupby("metric", sort=False):
            rows = rows.groupby("step", as_index=False).value.mean()
            fig.add_trace(go.Scatter(x=rows.step, y=rows.value, mode="lines+markers",
                                     name=f"{series} · {metric}",
                                     line={"dash": DASH.get(metric, "solid")}))
    fig.update_layout(title="Pooled Focus (solid) and Cover (dotted) over training steps",
                      xaxis_title="step", yaxis_title="score", yaxis_range=[0, 1.02],
                      height=380, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def show_beside(handle, series: str, names: list[str], timeline) -> None:
    """`timeline(handle, series)`: the page's cached long frame of a series."""
    others = [n for n in names if n != series]
    if not others:
        return
    twin = twin_of(series, names)
    options = [NONE] + others
    with st.expander("Beside another series (e.g. a supervised run and its unsupervised "
                     "twin)", expanded=twin is not None):
        other = st.selectbox("Series beside it", options, key="timeline_beside",
                             index=options.index(twin) if twin else 0)
        if other == NONE:
            return
        st.plotly_chart(beside({series: timeline(handle, series),
                                other: timeline(handle, other)}), key="timeline_beside_chart")
