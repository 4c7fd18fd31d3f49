"""Clicks on Inspect's figures select a token: a heatmap cell (its token and, for an expert
heatmap, its site) or an image patch. The figures carry an invisible click layer
(`routeviz.figures.tokens.click_layer`); `st.plotly_chart(on_select="rerun")` reports the
clicked point, and `follow_click` makes it the page's token (and site) on the next run, so
the token detail and the Why panel under the example follow it."""

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


def follow_click(event, key: str, sites_by_label: dict | None = None) -> None:
    """Select the clicked token of the example on show (and the site its row names) once
    per new click."""
    point = clicked(event)
    example = st.session_state.get("inspect_example") or 0
    if point is None:
        st.session_state.pop(f"_{key}_clicked", None)
        return
    site = (sites_by_label or {}).get(point["label"])
    mark = (int(example), point["token"], site)
    if st.session_state.get(f"_{key}_clicked") == mark:
        return
    st.session_state[f"_{key}_clicked"] = mark
    go_to(example, point["token"])
    if site is not None:
        st.session_state[GOTO_SITE] = site
    st.rerun()


def apply_site(sites: list[str]) -> None:
    """Before the site slider is drawn: take the site a click asked for."""
    site = st.session_state.pop(GOTO_SITE, None)
    if site in sites:
        st.session_state["inspect_site"] = site
