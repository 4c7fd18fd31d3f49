"""Embeddings: a 2-D map (UMAP or PCA) of tokens coloured by expert, tag or exit layer."""

import streamlit as st

from app_pages.common import cached, get_handle, need_run, run_facts, show_error
from routeviz import figures
from routeviz.errors import RoutevizError
from routeviz.figures import data, projection

MAX_POINTS = 5000


def _points(store, run, source, method, limit, expert_site, tag):
    if source == "states":
        matrix, points = projection.token_states(store, run, limit=limit)
    else:
        matrix, points = projection.routing_signatures(store, run, limit=limit)
    xy = projection.project(matrix, method)
    labelled = projection.label_points(store, run, points, expert_site, tag)
    labelled["x"], labelled["y"] = xy[:, 0], xy[:, 1]
    return labelled, projection.count_units(store, run, source)


points_for = cached(_points)

st.title("Embeddings")
handle = get_handle()
run = need_run(handle)
if run is None:
    st.stop()
facts = run_facts(handle, run)
states = projection.has_states(handle.store, run)
expert_sites = facts["sites"][facts["sites"]["kind"] == "expert"]["site"].tolist()

cols = st.columns(4)
source = cols[0].radio("Points", ["states", "routing"] if states else ["routing"],
                       format_func={"states": "token states",
                                    "routing": "routing signatures"}.get, key="emb_source")
method = cols[1].radio("Projection", ["umap", "pca"], format_func=str.upper, key="emb_method")
limit = cols[2].number_input("Max points", 10, MAX_POINTS, 2000, step=500, key="emb_limit")
color_options = (["expert"] if expert_sites else []) + \
    (["tag"] if facts["tags"] else []) + (["exit_layer"] if "exit" in facts["kinds"] else [])
if not color_options:
    st.info(f"Run {run!r} has nothing to colour tokens by.")
    st.stop()
color = cols[3].selectbox("Colour by", color_options, key="emb_color")
site = tag = None
if expert_sites:
    site = st.selectbox("Expert site", expert_sites, key="emb_site", format_func=data.short_site)
if color == "tag":
    tag = st.selectbox("Tag family", facts["tags"], key="emb_tag")
if not states:
    st.caption("This run recorded no token states (the `embeddings` table), so each token is "
               "placed by its routing signature: its gate weights at every expert site, its "
               "kept flags and its exit depth.")

if st.button("Draw the map", type="primary", key="emb_go") or st.session_state.get("emb_drawn") == run:
    st.session_state["emb_drawn"] = run
    try:
        with st.spinner(f"{method.upper()} of up to {int(limit):,} tokens…"):
            points, total = points_for(handle, run, source, method, int(limit), site, tag)
    except (RoutevizError, ValueError) as exc:
        show_error(exc)
        st.stop()
    st.caption(f"Showing {len(points):,} of {total:,} tokens (a fixed hash sample; cap "
               f"{int(limit):,}).")
    shown = points.dropna(subset=[color])
    st.plotly_chart(figures.embedding_scatter(shown, color), key="emb_scatter")
