"""Load & depth: expert load per site (starved experts flagged), layer-to-layer paths,
exit depth, kept-token fraction, compute saved."""

import streamlit as st

from app_pages.common import metric, page_run, run_facts, show_error
from routeviz import figures
from routeviz.errors import RoutevizError
from routeviz.figures import data
from routeviz.figures.labels import exit_label, path_label

handle, run = page_run("Load & depth")
kinds = run_facts(handle, run)["kinds"]
if not kinds:
    st.info(f"Run {run!r} recorded no routes.")
    st.stop()

try:
    if "expert" in kinds:
        st.subheader("Expert load")
        load = metric(handle, "load", run)
        sites = load.sites
        starved = int(sites["n_starved"].sum()) if "n_starved" in sites else 0
        a, b, c = st.columns(3)
        a.metric("Expert sites", len(sites))
        b.metric("Starved experts", starved, help="Chosen for under 1% of a site's tokens.")
        c.metric("Worst load CV", f"{sites['cv'].max():.2f}" if len(sites) else "–",
                 help="Coefficient of variation of per-expert counts; 0 = perfectly even.")
        st.plotly_chart(figures.load_bars(load.experts), key="load_bars")
        st.plotly_chart(figures.load_matrix(load.experts), key="load_matrix")
        box = st.expander("Per-site table", key="load_site_table", on_change="rerun")
        with box:
            if box.open:  # sent only while open
                st.dataframe(sites, hide_index=True)
        paths = metric(handle, "paths", run)
        if len(paths.transitions):
            st.subheader("Paths")
            st.plotly_chart(figures.path_sankey(paths.transitions), key="load_sankey")
            st.caption(f"{paths.n_tokens:,} units; the most common paths, each step a site "
                       "and its top-1 expert (a unit dropped at a site skips it):")
            top = paths.top_paths
            st.dataframe(top.assign(path=[path_label(sites, path.split(">")) for sites, path
                                          in zip(top["sites"], top["path"])])
                         .drop(columns="sites"), hide_index=True, key="load_paths")
        else:
            st.caption("Only one expert site: no layer-to-layer paths to draw.")
    if "keep" in kinds:
        st.subheader("Kept tokens")
        keep = metric(handle, "keep", run)
        st.plotly_chart(figures.kept_fraction(keep.sites), key="load_kept")
        if len(keep.tokens):
            st.caption(f"{keep.tokens['never_discarded_fraction'].iloc[0]:.1%} of tokens were "
                       "never dropped at any layer.")
    if "exit" in kinds:
        st.subheader("Exit depth")
        ex = metric(handle, "exits", run)
        a, b = st.columns(2)
        a.metric("Compute saved", f"{ex.compute_saved:.1%}",
                 help="1 − mean((exit layer + 1) / layers), over " + ex.unit + "s.")
        b.metric("Mean exit layer", exit_label(ex.mean_exit_layer, ex.n_layers),
                 help="Exit layers are 0-based: exiting at layer L means blocks 0..L ran.")
        st.plotly_chart(figures.exit_histogram(data.exit_frame(ex), ex.n_layers),
                        key="load_exits")
        from app_pages.load_depth_halting import show_token_depth

        show_token_depth(handle, run, ex)  # masked or removed; depth per position and tag
except RoutevizError as exc:
    show_error(exc)
