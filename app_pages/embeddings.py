"""Embeddings: a UMAP map of tokens (routing vectors, or the hidden states each routing site
received when the run recorded them: `trace --hidden-states`) coloured by expert, tag or
exit layer. Points are drawn with WebGL (plotly Scattergl), so tens of thousands stay
responsive; the count drawn is stated. UMAP's time, not the drawing, sets the limit."""

import threading

import streamlit as st

from app_pages.common import cached, metric, page_run, run_facts, show_error
from routeviz import figures
from routeviz.errors import RoutevizError
from routeviz.figures import data

ANY = "(any)"
MAX_POINTS = 200_000  # WebGL draws this many; UMAP takes ~1 min per 20k points on one core


def _embed(store, run, source, site, limit):
    from routeviz.analysis.embeddings import embed

    return embed(store, run, source=source, site=site, limit=limit)


def _state_sites(store, run):
    from routeviz.analysis.embeddings import hidden_sites

    return hidden_sites(store, run)


def _plain(value) -> str:
    """3.0 -> "3" (exit layers and expert ids come back as floats after a join)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def exit_reach(handle, run, facts, result, per_token: bool) -> str:
    """What an exit-layer colouring shows: each unit's exit layer over the whole run, but
    only the units the chosen site saw; those that exited before its layer are not here."""
    layer = result.layer if result.source == "hidden" else None
    if layer is None:
        sites = facts["sites"]
        layer = int(sites[sites["site"] == result.site]["layer"].min())
    unit = "tokens" if per_token else "examples"
    hist = data.exit_frame(metric(handle, "exits", run))
    before = hist[(hist["unit"] == unit) & (hist["layer"] < layer) & (hist["count"] > 0)]
    where = data.short_site(result.state_site or result.site)
    head = (f"Colours are each {unit[:-1]}'s exit layer in the whole run, but only the {unit} "
            f"that reached {where} (layer {layer}) are here")
    if before.empty:
        return head + f": no {unit[:-1]} exited before layer {layer}."
    counts = ", ".join(f"{int(n):,} at layer {int(lay)}"
                       for lay, n in zip(before["layer"], before["count"]))
    return (head + f": {int(before['count'].sum()):,} {unit} exited earlier ({counts}) and "
            "never reached it. Pick an earlier site to see them.")


embed_points = cached(_embed)
state_sites = cached(_state_sites)


@st.cache_resource(show_spinner=False)
def _warm_umap() -> threading.Thread:
    """Compile UMAP's numba kernels in the background once per process (15-30 s)."""
    from routeviz.analysis.embeddings import warm_umap

    thread = threading.Thread(target=warm_umap, name="routeviz-warm-umap", daemon=True)
    thread.start()
    return thread


def _has_states(store, run):
    return store.facts(run).has_embeddings


has_states = cached(_has_states)

handle, run = page_run("Embeddings")
warming = _warm_umap()
facts = run_facts(handle, run)
expert_sites = facts["sites"][facts["sites"]["kind"] == "expert"]["site"].tolist()
states = has_states(handle, run)
sources = (["routing"] if expert_sites else []) + (["hidden"] if states else [])
if not sources:
    st.info(f"Run {run!r} has neither expert routes nor recorded hidden states to map.")
    st.stop()

cols = st.columns([2, 3, 2])
source = cols[0].radio("Points", sources, key="emb_source",
                       format_func={"routing": "routing vectors", "hidden": "hidden states"}.get)
site = None
recorded = state_sites(handle, run).dropna(subset=["site"]) if source == "hidden" else None
if expert_sites and (recorded is None or recorded.empty):
    site = cols[1].selectbox("Expert site", expert_sites, index=len(expert_sites) - 1,
                             key="emb_site", format_func=data.short_site,
                             help="Routing vectors are taken here; points are coloured by "
                                  "their top-1 expert here.")
if recorded is not None and len(recorded):  # states per site (older stores: per layer)
    names = recorded.site.tolist()
    preferred = [n for n in names if n in expert_sites] or names
    site = cols[1].selectbox("Hidden states at", names, index=names.index(preferred[-1]),
                             key="emb_state_site", format_func=data.short_site,
                             help="The input this routing site received; points are "
                                  "coloured by their top-1 expert here (an expert site) "
                                  "or at the last expert site.")
limit = cols[2].number_input("Max points", 10, MAX_POINTS, 2000, step=1000, key="emb_limit",
                             help="All points up to this many are mapped (a seeded sample "
                                  "beyond it) and drawn with WebGL.")
color_options = (["expert"] if expert_sites else []) + \
    (["exit_layer"] if "exit" in facts["kinds"] else []) + [f"tag:{t}" for t in facts["tags"]]
color = st.radio("Colour by", color_options, horizontal=True, key="emb_color",
                 format_func=lambda c: c.replace("_", " "))
if source == "routing":
    st.caption("Each token is placed by its routing-probability vector at the chosen site (the "
               "softmax of its router logits when recorded, else its top-k gate weights).")

drawn = st.session_state.get("emb_drawn") == (run, source, site, int(limit))
if st.button("Draw the map", type="primary", key="emb_go") or drawn:
    st.session_state["emb_drawn"] = (run, source, site, int(limit))
    try:
        with st.spinner("UMAP (the first map in a fresh app compiles its kernels: ~20 s)…"):
            warming.join()
            result = embed_points(handle, run, source, site, int(limit))
    except RoutevizError as exc:
        show_error(exc)
        st.stop()
    where = f" at {data.short_site(result.state_site)}" if result.state_site else ""
    st.caption(f"{result.note}{where}; {result.n_shown:,} points drawn with WebGL "
               f"(at most {int(limit):,}).")
    shown = result.points.assign(label=result.points.get("text", ""))
    left, right = st.columns(2)
    search = left.text_input("Highlight tokens containing", key="emb_search",
                             help="Points whose token text contains this (any case) are "
                                  "ringed.").strip()
    tag_columns = [c for c in shown.columns if str(c).startswith("tag:")]
    value_options = [f"{c[4:]}={v}" for c in tag_columns
                     for v in sorted(shown[c].dropna().astype(str).unique())]
    only = right.selectbox("Only points with tag value", [ANY] + value_options, key="emb_value")
    if only != ANY:
        name, _, value = only.partition("=")
        shown = shown[shown[f"tag:{name}"].astype(str) == value]
        st.caption(f"Filtered to `{only}`: {len(shown):,} of {result.n_shown:,} points.")
    what = "Routing vectors" if result.source == "routing" else "Hidden states"
    at = result.state_site or (f"layer {result.layer}" if result.source == "hidden"
                               and result.layer is not None else result.site)
    title = (f"{what}{' at ' + data.short_site(at) if at else ''}, coloured by "
             f"{color.replace('tag:', '').replace('_', ' ')}")
    if color not in shown or shown[color].isna().all():
        st.info(f"No {color.replace('_', ' ')} values for these points.")
    else:
        shown = shown.dropna(subset=[color])
        distinct = shown[color].unique()
        if len(distinct) == 1:
            st.caption(f"One colour: every point drawn has {color.replace('_', ' ')} = "
                       f"{_plain(distinct[0])}.")
        if color == "exit_layer":
            st.caption(exit_reach(handle, run, facts, result, bool((shown.token >= 0).any())))
        matches = None
        if search:
            matches = shown["label"].astype(str).str.lower().str.contains(search.lower(),
                                                                         regex=False)
            st.caption(f"{int(matches.sum()):,} points contain the text searched for "
                       "(ringed).")
        st.plotly_chart(figures.embedding_scatter(
            shown, color, title=title, highlight=matches,
            highlight_name=f"contains {search}"), key="emb_scatter")
