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
            reuse = whatif.plain_run(facts, run, example)
            with st.spinner("Running the model with the intervention"
                            f"{'' if reuse else ' (and once plain)'}…"):
                plain, edited = whatif.rerun(runner, handle.store.path, run, example, item,
                                             ablate=ablate, force=force, top_k=top_k or None,
                                             disable=disable, plain=reuse)
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
    from routeviz.analysis.predictions import decoder_of
    from routeviz.interventions import whatif
    from routeviz.metrics.output_change import output_change

    with handle.lock:
        store = handle.store
        change = output_change(store, edited, plain, top=MAX_ROWS)
        table = whatif.routing_side_by_side(store, plain, edited)
        outputs = [store.example_info(r, 0).get("prediction") for r in (plain, edited)]
        config = store.config(edited)
    st.markdown(f"**Plain** `{plain}` · **What if** `{edited}`")
    left, right = st.columns(2)
    for column, title, output in ((left, "Plain", outputs[0]), (right, "What if", outputs[1])):
        with column:
            st.caption(f"{title}: model output")
            st.code(str(output) if output else "(no output)", language=None)
    if change.get("n_compared"):
        if change["kind"] == "class":
            row = change["examples"][0]
            st.metric("Probability of the plain prediction", f"{row['p_run']:.3f}",
                      delta=f"{row['delta_p']:+.3f}")
        else:
            _prediction_changes(handle, store, plain, edited, change, config, decoder_of)
    _routing_changes(table, config, edited)
    if st.button("Open the what-if run", key=f"whatif-open-{edited}"):
        select_run(edited)
        st.rerun()


def _prediction_changes(handle, store, plain, edited, change, config, decoder_of) -> None:
    """The mean KL, and which tokens' next-token prediction changed, with both predictions."""
    from routeviz.interventions import whatif

    n = change["n_top1_changed"]
    st.metric("Next-token KL (mean over tokens, nats)", f"{change['mean_kl']:.4f}",
              delta=f"{n} of {change['n_compared']} next-token predictions changed",
              delta_color="off")
    if not n:
        return
    try:
        decode = decoder_of(load_runner(whatif.model_source(config)))
    except (RoutevizError, OSError, ValueError):
        decode = None  # the ids, then
    with handle.lock:
        predictions = whatif.prediction_changes(store, plain, edited, decode)
    st.caption(f"The {len(predictions)} token(s) after which the model's most likely next "
               "token changed (probabilities of each run's own top-1):")
    st.dataframe(predictions, hide_index=True, key=f"whatif-predictions-{edited}",
                 column_config={"plain_probability": st.column_config.NumberColumn(format="%.2f"),
                                "whatif_probability": st.column_config.NumberColumn(format="%.2f")})


def _routing_changes(table, config: dict, edited: str) -> None:
    """How many tokens changed a decision, at which sites (every one named), which of them
    downstream of the edit; then the rows."""
    from routeviz.interventions.whatif import EXIT_SITE

    changed = table[table.changed]
    sites = list(dict.fromkeys(changed.site))
    intervention = config.get("intervention") or {}
    edited_sites = set(intervention.get("sites") or {})
    if "exit" in (intervention.get("disable") or ()):
        edited_sites.add(EXIT_SITE)
    downstream = [s for s in sites if s not in edited_sites]
    def named(names):
        return ", ".join(f"`{name}`" for name in names) or "none"

    exit_note = (f" `{EXIT_SITE}` is the exit decision, whichever layer's head took it."
                 if EXIT_SITE in sites else "")
    st.caption(f"{changed.token.nunique()} token(s) changed a decision (top-1 expert, kept or "
               f"dropped, merge, exit layer) at {len(sites)} site(s): {named(sites)}; of these "
               f"{len(downstream)} downstream of the edit (not edited themselves): "
               f"{named(downstream)}.{exit_note}")
    others = int(table.others_changed.sum())
    if others:
        st.caption(f"{others} more token-site(s) kept their top-1 expert and changed only the "
                   "experts after it (e.g. a smaller top-k): not counted as changed.")
    shown = table if st.toggle("Show every token", key=f"whatif-all-{edited}") else changed
    if len(shown) > MAX_ROWS:
        st.caption(f"Showing the first {MAX_ROWS} of {len(shown)} rows.")
    st.dataframe(shown.head(MAX_ROWS), hide_index=True, width="stretch",
                 key=f"whatif-routing-{edited}", column_config={
                     "changed": st.column_config.CheckboxColumn(
                         "changed", help="its first choice differs: top-1 expert, kept or "
                                         "dropped, merge target, exit layer"),
                     "others_changed": st.column_config.CheckboxColumn(
                         "only later experts changed", help="same top-1 expert, other "
                                                            "experts differ (e.g. top-k)")})
