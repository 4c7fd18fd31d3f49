"""Inspect's pickers: which example (any of the run's, by id or found by a token or tag), and
which token of it, with that token's other occurrences in the run.

Session keys (kept across pages and in the URL, app_pages/page_state.URL_KEYS):
inspect_example, inspect_token, inspect_search (token text), inspect_tag ("name=value").
`inspect_selected_token` = {"run", "example", "token", "text", "site"}: the token the
page points at, for the panels under it (click-to-explain).
"""

from __future__ import annotations

import streamlit as st

from app_pages.common import cached
from routeviz.analysis import find

GOTO = "_inspect_goto"  # (example, token) asked for by a click; applied before the widgets
MAX_FOUND = 500  # occurrences listed at most


example_range = cached(find.example_range)
tag_values = cached(find.tag_values)
find_tokens = cached(find.find_tokens)


def _sources(store, run, first, last):
    return store.example_sources(run, range(first, last + 1))


example_sources = cached(_sources)


def go_to(example: int, token: int | None = None) -> None:
    """Show `example` (and `token`) on the next run."""
    st.session_state[GOTO] = (int(example), None if token is None else int(token))


def pick_example(handle, run: str) -> int | None:
    """The example to show: a number input over the run's ids (every one reachable)."""
    span = example_range(handle, run)
    goto = st.session_state.pop(GOTO, None)
    if goto is not None:
        st.session_state["inspect_example"] = goto[0]
        if goto[1] is not None:
            st.session_state["inspect_token"] = goto[1]
    if st.session_state.get("_inspect_view_run") not in (None, run):  # another run: its start
        st.session_state["inspect_example"] = span["first"] or 0
        st.session_state["inspect_token"] = 0
    st.session_state["_inspect_view_run"] = run
    if not span["n"]:
        return None
    first, last = span["first"], span["last"]
    current = st.session_state.get("inspect_example")
    if not isinstance(current, int) or not first <= current <= last:
        st.session_state["inspect_example"] = first
    st.markdown(f"**Run** `{run}` · {span['n']:,} example(s), ids {first:,}–{last:,}")
    if span["n"] == 1:
        return first
    example = st.number_input(f"Example (id {first}–{last})", min_value=first, max_value=last,
                              step=1, key="inspect_example")
    source = example_sources(handle, run, int(example), int(example)).get(int(example))
    if source:
        st.caption(f"Example {example}: {source[:200]}")
    return int(example)


def find_panel(handle, run: str) -> None:
    """Search the run's tokens by text and by tag value; a picked row opens that token."""
    with st.expander("Find tokens in this run (text, tag value)",
                     expanded=bool(st.session_state.get("inspect_search")
                                   or st.session_state.get("inspect_tag"))):
        left, right = st.columns(2)
        text = left.text_input("Token text contains", key="inspect_search",
                               placeholder="e.g. def")
        tags = tag_values(handle, run)
        options = [""] + [f"{n}{find.TAG_SEPARATOR}{v}" for n, v in zip(tags.name, tags.value)]
        if st.session_state.get("inspect_tag") not in options:
            st.session_state["inspect_tag"] = ""
        tag = right.selectbox("With tag value", options, key="inspect_tag",
                              format_func=lambda o: o or "(any)")
        if not text and not tag:
            st.caption("Type a token's text or pick a tag value to list its occurrences.")
            return
        found, total = find_tokens(handle, run, text or None, tag=tag or None, limit=MAX_FOUND)
        _occurrence_table(found, total, key="inspect_found")


def _occurrence_table(found, total: int, key: str) -> None:
    """Occurrences as a table; selecting a row opens that example at that token."""
    cut = total > len(found)
    st.caption(f"{f'the first {len(found):,} of ' if cut else ''}{total:,} occurrence(s) in "
               f"{found.example.nunique():,}{'+' if cut else ''} example(s); select a row to "
               "open it.")
    if found.empty:
        return
    def open_row() -> None:  # before the script runs: the page opens the row in one run
        state = st.session_state.get(key)
        rows = state.get("selection", {}).get("rows", []) if state else []
        if rows:
            row = found.iloc[rows[0]]
            go_to(int(row.example), int(row.token))

    st.dataframe(found, hide_index=True, on_select=open_row, selection_mode="single-row",
                 key=key, width="stretch")


def token_detail(handle, run: str, example: int, tokens: list[str], site: str | None) -> None:
    """One token of the example: its number, its text, and its other occurrences in the run."""
    if not tokens:
        return
    n = len(tokens)
    st.subheader("A token and its other occurrences")
    if not isinstance(st.session_state.get("inspect_token"), int) or not (
            0 <= st.session_state["inspect_token"] < n):
        st.session_state["inspect_token"] = 0
    left, right = st.columns([1, 3])
    token = left.number_input(f"Token (0–{n - 1})", min_value=0, max_value=n - 1, step=1,
                              key="inspect_token")
    text = tokens[int(token)]
    st.session_state["inspect_selected_token"] = {"run": run, "example": int(example),
                                                  "token": int(token), "text": text,
                                                  "site": site}
    found, total = find_tokens(handle, run, text, exact=True, limit=MAX_FOUND)
    right.markdown(f"Token **#{token}** `{text!r}`: {total:,} occurrence(s) of this text in "
                   "the run")
    _occurrence_table(found, total, key="inspect_occurrences")
