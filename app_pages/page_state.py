"""The view kept across pages and in the URL: widget state that Streamlit would drop when its
page is not shown (KEPT_KEYS), and the query parameters a link reopens a view with
(URL_KEYS)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

# Widget state of a page that is not shown is dropped by Streamlit; these keys are written
# back every run (app.py) so a page finds its model, text and view when you come back.
KEPT_KEYS = ("inspect_model", "inspect_checkpoint", "inspect_text", "inspect_run_name",
             "inspect_site", "inspect_heatmap_value", "inspect_example", "inspect_search",
             "inspect_tag", "inspect_token")
# URL query parameter -> session key: a link with them reopens the same view.
URL_KEYS = {"store": "store_path", "run": "run", "model": "inspect_model",
            "site": "inspect_site", "example": "inspect_example", "token": "inspect_token",
            "q": "inspect_search", "tag": "inspect_tag"}
INT_URL_KEYS = ("example", "token")


def is_store_dir(path: str) -> bool:
    """An existing routeviz store: a link may open one, never create a directory."""
    where = Path(path).expanduser()
    return where.is_dir() and ((where / "routeviz.json").is_file() or (where / "routes").is_dir())


def url_notes(run_names: list[str]) -> list[str]:
    """One line for each part of the link that could not be followed: a store that is not
    a routeviz store here, a run the store no longer has (deleted or renamed). Said once."""
    notes = st.session_state.pop("_url_notes", [])
    wanted = st.session_state.pop("_url_run", None)
    if wanted is not None and wanted not in run_names:
        shown = st.session_state.get("run")
        notes.append(f"The link's run {wanted!r} is not in this store (deleted?)"
                     + (f"; showing {shown!r} instead." if shown else "."))
    return notes


def keep_widget_state(keys=KEPT_KEYS) -> None:
    """Interrupt Streamlit's clean-up of unmounted widgets' state for `keys`."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def state_from_url() -> str | None:
    """Once per session, copy the URL's query parameters into session state (ints where
    they are ids; bad ones ignored); returns the `page` parameter then, else None."""
    if st.session_state.get("_url_read"):
        return None
    st.session_state["_url_read"] = True
    params = st.query_params
    for name, key in URL_KEYS.items():
        value = params.get(name)
        if value is None or value == "":
            continue
        if name == "store" and not is_store_dir(value):
            st.session_state["_url_notes"] = [f"The link's store {value!r} is not a routeviz "
                                              "store here; it was not opened."]
            continue
        if name == "run":
            st.session_state["_url_run"] = value  # checked against the store (url_notes)
        if name in INT_URL_KEYS:
            try:
                value = int(value)
            except ValueError:
                continue
        st.session_state[key] = value
    return params.get("page")


def state_to_url(**params) -> None:
    """Write `params` (None or "" drops one) into the URL's query string."""
    for name, value in params.items():
        if value is None or value == "":
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)
