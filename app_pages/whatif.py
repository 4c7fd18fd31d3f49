"""The What-if panel (Inspect calls `render_whatif` under an example): pick experts to ablate
or force, a top-k, or decisions to turn off; run the same input again with that intervention
into a new run; see both routings and outputs side by side, with the tokens that changed.
Not a page of its own: the logic is in `routeviz.whatif`."""

from __future__ import annotations

import streamlit as st

from app_pages.common import load_runner, query, select_run, show_error
from routeviz.errors import RoutevizError

MAX_ROWS = 2000  # side-by-side rows drawn at most


def render_whatif(handle, run: str, example: int, config: dict | None = None) -> None:
    """The panel for `example` of `run` (config: the run's config; read here if None)."""
    from routeviz.interventions import whatif

    config = config if config is not None else query(handle, lambda s: s.config(run))
    facts = query(handle, lambda s: s.facts(run))
    expert_sites = list(facts.sites_of("expert").site) if "expert" in facts.kinds else []
    key = f"whatif-{run}-{int(example)}"
    if not expert_sites and not set(facts.kinds) & {"keep", "merge", "exit"}:
        st.info("This run records no routing that can be changed.")
        return
    st.caption("Run this input again with routing changed, into a new run, and compare.")
    left, right = st.columns(2)
    with left:
        ablate_sites = st.multiselect("Ablate at sites", expert_sites, key=f"{key}-ablate-sites")
        ablate_experts = st.multiselect("…these experts", _experts(facts, ablate_sites),
                                        key=f"{key}-ablate-experts")
        top_k = st.number_input("Top-k (0: as recorded)", min_value=0, max_value=64, value=0,
                                key=f"{key}-top-k")
    with right:
        force_site = st.selectbox("Force at site", ["(none)"] + expert_sites,
                                  key=f"{key}-force-site")
        force_expert = st.selectbox("…this expert", _experts(facts, [force_site]),
                                    key=f"{key}-force-expert")
        offered = [k for k in ("keep", "merge", "exit") if k in facts.kinds]
        disable = st.multiselect("Turn off", offered, key=f"{key}-disable",
                                 help="keep: no pruning or capacity routing; merge: no "
                                      "merging; exit: no early exit")
    if st.button("Run with this intervention", key=f"{key}-go"):
        ablate = [f"{s}:{e}" for s in ablate_sites for e in ablate_experts]
        force = [f"{force_site}:{force_expert}"] if force_site != "(none)" else []
        try:
            item = query(handle, whatif.example_item, run, int(example))
            runner = load_runner(whatif.model_source(config))
            with st.spinner("Running the model twice (plain and with the intervention)…"):
                plain, edited = whatif.rerun(runner, handle.store.path, run, example, item,
                                             ablate=ablate, force=force, top_k=top_k or None,
                                             disable=disable)
            st.session_state[key] = (plain, edited)
            with handle.lock:
                handle.store.refresh()  # the views see the new runs' files
        except (RoutevizError, OSError, ValueError) as exc:
            show_error(exc)
    if key in st.session_state:
        _show_comparison(handle, *st.session_state[key])


def _experts(facts, sites) -> list[int]:
    counts = [n for s, n in facts.n_experts.items() if s in sites] or list(
        facts.n_experts.values())
    return list(range(max(counts))) if counts else []


def _show_comparison(handle, plain: str, edited: str) -> None:
    from routeviz import metrics
    from routeviz.interventions import whatif

    with handle.lock:
        store = handle.store
        report = metrics.diff(store, edited, plain)
        table = whatif.routing_side_by_side(store, plain, edited)
        outputs = [store.example_info(r, 0).get("prediction") for r in (plain, edited)]
    st.markdown(f"**Plain** `{plain}` · **What if** `{edited}`")
    left, right = st.columns(2)
    for column, title, output in ((left, "Plain", outputs[0]), (right, "What if", outputs[1])):
        with column:
            st.caption(f"{title}: model output")
            st.code(str(output) if output else "(no output)", language=None)
    change = report["outputs"]
    if change.get("n_compared"):
        if change["kind"] == "class":
            row = change["examples"][0]
            st.metric("Probability of the plain prediction", f"{row['p_run']:.3f}",
                      delta=f"{row['delta_p']:+.3f}")
        else:
            st.metric("Next-token KL (mean over tokens, nats)", f"{change['mean_kl']:.4f}",
                      delta=f"{change['n_top1_changed']} top-1 predictions changed",
                      delta_color="off")
    changed = table[table.changed]
    st.caption(f"{int(changed.token.nunique())} token(s) routed differently at "
               f"{int(changed.site.nunique())} site(s); sites changed downstream of the edit: "
               f"{', '.join(report['downstream_changed_sites']) or 'none'}")
    shown = table if st.toggle("Show every token", key=f"whatif-all-{edited}") else changed
    if len(shown) > MAX_ROWS:
        st.caption(f"Showing the first {MAX_ROWS} of {len(shown)} rows.")
    st.dataframe(shown.head(MAX_ROWS), hide_index=True, use_container_width=True)
    if st.button("Open the what-if run", key=f"whatif-open-{edited}"):
        select_run(edited)
        st.rerun()
