"""Clicks on Inspect's figures select a token: a heatmap cell (its token and, for an expert
heatmap, its site) or an image patch. The figures carry an invisible click layer
(`routeviz.figures.tokens.click_layer`); `st.plotly_chart(on_select=follow_click(...))`
makes the clicked point the page's token (and site) before the script runs, so the token
detail and the Why panel under the example follow it in the same run."""

from __future__ import annotations

import streamlit as st

from app_pages.inspect_find import go_to

GOTO_SITE = "_inspect_goto_site"  # a site asked for by a click; applied before the slider


def clicked(event) -> dict | None:
    """The first clicked point of a plotly selection event that carries a token index."""
    points = getattr(getattr(event, "selection", None), "points", None) or (
        event.get("selection", {}).get("points", []) if isinstance(event, dict) else [])
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, list):
            custom = custom[0] if custom else None
        if custom is not None:
            return {"token": int(custom), "label": point.get("y")}
    return None


def follow_click(key: str, sites_by_label: dict | None = None):
    """The chart's on_select callback: the clicked token of the example on show (and the
    site its row names) becomes the page's, before the script runs (one script run per
    click, not one that draws the old token and reruns; issue 25)."""
    def on_select() -> None:
        point = clicked(st.session_state.get(key))
        if point is None:  # a click off the cells clears the selection: nothing to follow
            return
        go_to(st.session_state.get("inspect_example") or 0, point["token"])
        site = (sites_by_label or {}).get(point["label"])
        if site is not None:
            st.session_state[GOTO_SITE] = site
    return on_select


def apply_site(sites: list[str]) -> None:
    """Before the site slider is drawn: take the site a click asked for."""
    site = st.session_state.pop(GOTO_SITE, None)
    if site in sites:
        st.session_state["inspect_site"] = site
