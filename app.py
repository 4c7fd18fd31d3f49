"""routeviz dashboard: `streamlit run app.py` (or `make run`).

The sidebar holds what every page shares: the store (a directory, created on first use)
and the run being looked at. Each page in app_pages/ reads them from st.session_state.
The URL keeps the view (`?store=...&run=...&page=...` plus Inspect's keys,
app_pages/page_state.URL_KEYS):
a link reopens it; widget state of pages not shown is kept (page_state.KEPT_KEYS).
"""

from pathlib import Path

import streamlit as st

from app_pages.common import (
    current_run,
    default_store_path,
    get_handle,
    run_config,
    run_names,
    run_source,
)
from app_pages.page_state import keep_widget_state, state_from_url, state_to_url, url_notes

st.set_page_config(page_title="routeviz", layout="wide")

HERE = Path(__file__).resolve().parent
PAGES = [  # file in app_pages/ (its URL path), title, icon; the first is the default
    ("inspect", "Inspect", ":material/search:"),
    ("experts", "Experts", ":material/groups:"),
    ("specialization", "Specialization", ":material/center_focus_strong:"),
    ("load_depth", "Load & depth", ":material/balance:"),
    ("embeddings", "Embeddings", ":material/scatter_plot:"),
    ("compare", "Compare", ":material/compare_arrows:"),
    ("timeline", "Timeline", ":material/timeline:"),
    ("runs", "Runs", ":material/folder_open:"),
    ("export", "Export", ":material/download:"),
]

url_page = state_from_url()  # a link's query parameters, read once per session
if url_page in {name for name, _, _ in PAGES}:
    st.session_state["_default_page"] = url_page  # the page a link opened stays at "/"
default = st.session_state.get("_default_page", PAGES[0][0])
page = st.navigation([st.Page(HERE / f"app_pages/{name}.py", title=title, icon=icon,
                              default=name == default) for name, title, icon in PAGES])
keep_widget_state()

if "store_path" not in st.session_state:
    st.session_state["store_path"] = default_store_path()
if "pending_run" in st.session_state:  # a page asked to show a new run
    st.session_state["run"] = st.session_state.pop("pending_run")

with st.sidebar:
    st.markdown("### routeviz")
    st.text_input("Store directory", key="store_path",
                  help="A routeviz store: a directory of Parquet files, created on first use.")
    state_to_url(store=st.session_state["store_path"])  # a reload reopens this store
    handle = get_handle()
    names = []
    if handle is not None:
        names = run_names(handle)
        if names:
            chosen = current_run(handle)
            if st.session_state.get("run") not in names:
                st.session_state["run"] = chosen
            st.selectbox("Run", names, key="run")
            source = run_source(run_config(handle, st.session_state["run"]))
            if source != "traced":  # an imported run says so on every page
                st.caption(source[0].upper() + source[1:])
            state_to_url(run=st.session_state["run"])
        else:
            st.caption("No runs yet.")

# what a link asked for and did not get: a run deleted since, a directory that is no store
for note in url_notes(names) if handle is not None else []:
    st.warning(note)
state_to_url(page=page.url_path or default)
page.run()
