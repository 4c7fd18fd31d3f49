"""routeviz dashboard: `streamlit run app.py` (or `make run`).

The sidebar holds what every page shares: the store (a directory, created on first use)
and the run being looked at. Each page in app_pages/ reads them from st.session_state.
"""

from pathlib import Path

import streamlit as st

from app_pages.common import current_run, default_store_path, get_handle, run_names

st.set_page_config(page_title="routeviz", layout="wide")

HERE = Path(__file__).resolve().parent
PAGES = [
    st.Page(HERE / "app_pages/inspect.py", title="Inspect", icon=":material/search:", default=True),
    st.Page(HERE / "app_pages/experts.py", title="Experts", icon=":material/groups:"),
    st.Page(HERE / "app_pages/specialization.py", title="Specialization", icon=":material/center_focus_strong:"),
    st.Page(HERE / "app_pages/load_depth.py", title="Load & depth", icon=":material/balance:"),
    st.Page(HERE / "app_pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page(HERE / "app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page(HERE / "app_pages/timeline.py", title="Timeline", icon=":material/timeline:"),
    st.Page(HERE / "app_pages/runs.py", title="Runs", icon=":material/folder_open:"),
    st.Page(HERE / "app_pages/export.py", title="Export", icon=":material/download:"),
]

page = st.navigation(PAGES)

if "store_path" not in st.session_state:
    st.session_state["store_path"] = default_store_path()
if "pending_run" in st.session_state:  # a page asked to show a new run
    st.session_state["run"] = st.session_state.pop("pending_run")

with st.sidebar:
    st.markdown("### routeviz")
    st.text_input("Store directory", key="store_path",
                  help="A routeviz store: a directory of Parquet files, created on first use.")
    handle = get_handle()
    if handle is not None:
        names = run_names(handle)
        if names:
            chosen = current_run(handle)
            if st.session_state.get("run") not in names:
                st.session_state["run"] = chosen
            st.selectbox("Run", names, key="run")
        else:
            st.caption("No runs yet.")

page.run()
