"""Experts: what each expert does. A grid of expert cards for one site (routeviz.analysis
.cards), the experts whose tag values are furthest beyond chance first; each card links to
its full view (`?page=experts&site=…&expert=…`): tags against the permutation band, top
tokens by the count-aware score, contexts (image runs: patches, or whole images for
per-example routing), load, tokens it never shares, experts it fires with and feeds, its
past in a series, and its ablation on the run's inputs (one click). A token search (which
experts get a token) and a tag-value filter narrow the grid."""

import pandas as pd
import streamlit as st

from app_pages.common import (
    cached,
    load_runner,
    page_run,
    run_config,
    run_facts,
    show_error,
)
from app_pages.experts_views import (
    CARD_CSS,
    TAGS_NOTE,
    grid_card,
    head_markdown,
    history_caption,
    label_markdown,
    literal,
    partners_table,
    show_contexts,
    show_tokens,
    tags_table,
)
from app_pages.page_state import state_to_url
from routeviz.errors import RoutevizError
from routeviz.figures import data

PER_ROW = 4
MAX_EXPERTS = 64
ANY = "(any)"
CONTENT = "(content families)"

SCORE_NOTE = ("Typical tokens are ranked by **score**: the 95% Wilson lower bound of "
              "P(expert | token), the share of the token's occurrences routed to this expert "
              "(any rank). It discounts tokens seen only a few times, so a token seen twice "
              "does not outrank one routed 54 times in 60. `seen` counts the token's "
              "occurrences, `here` those routed to this expert; tokens routed here fewer than "
              "the minimum count are left out.")


def _cards(store, run, site, expert, tags, min_count, contexts):
    from routeviz.analysis.cards import expert_cards

    return expert_cards(store, run, site=site, expert=expert, tags=list(tags) or None,
                        min_count=min_count, contexts=contexts)


def _images(store, run, examples):
    return store.example_images(run, examples)


def _experts_tag_values(store, run):
    return store.tag_values(run)


def _experts_of_value(store, run, site, name, value):
    return store.tag_value_experts(run, site, name, value)


def _experts_of_token(store, run, site, search):
    return store.token_experts(run, site, search)


cards_of = cached(_cards)
example_images = cached(_images)
tag_values = cached(_experts_tag_values)
experts_of_value = cached(_experts_of_value)
experts_of_token = cached(_experts_of_token)


def token_search(handle, run, site, search: str) -> None:
    """The experts that tokens containing `search` go to at `site`, with P(expert | token)."""
    found = experts_of_token(handle, run, site, search)
    if found.empty:
        st.info(f"No token contains “{literal(search)}” in run {literal(run)}.")
        return
    st.dataframe(pd.DataFrame({
        "token": [data.show_token(t) for t in found["text"]], "expert": found["expert"],
        "count": found["count"], "seen": found["n_text"],
        "P(expert | token)": (found["count"] / found["n_text"]).round(3)}),
        hide_index=True, height=min(400, 38 + 35 * len(found)))


def value_filter(handle, run, site, choice: str, min_count: int):
    """The experts that get the tag value `name=value` at least `min_count` times, most
    likely first (P(expert | value)), with a caption; None when no filter is chosen."""
    if choice == ANY:
        return None
    name, _, value = choice.partition("=")
    got = experts_of_value(handle, run, site, name, value)
    got = got[got["count"] >= min_count].assign(p=lambda d: d["count"] / d["n_tag"])
    got = got.sort_values(["p", "expert"], ascending=[False, True])
    st.caption(f"Filtered to {literal(choice)}: {len(got)} experts get it at least {min_count} "
               "times; " + ", ".join(f"{int(e)} (P(expert | value) = {p:.2f})"
                                     for e, p in zip(got.expert, got.p)))
    return [int(e) for e in got.expert]


def chosen_expert(site: str):
    """The expert of the URL (`?site=…&expert=…`) when it names this site, else None."""
    params = st.query_params
    value = params.get("expert")
    if params.get("site") != site or value is None or not str(value).lstrip("-").isdigit():
        return None
    return int(value)


def images_for(handle, run, cards, modality):
    if modality != "image":
        return None
    examples = tuple(sorted({c["example"] for card in cards for c in card["contexts"]}))
    return example_images(handle, run, examples).set_index("example") if examples else \
        pd.DataFrame(columns=["image", "grid_h", "grid_w"])


def _back_to_grid() -> None:
    """The back button's callback: the grid is drawn by the run it starts (one, not two)."""
    st.query_params.pop("expert", None)


def full_view(handle, run, site, card, images, n_contexts) -> None:
    st.button("← All experts at this site", key="experts_back", on_click=_back_to_grid)
    st.subheader(f"Expert {card['expert']} at {data.short_site(site)}")
    st.markdown(head_markdown(card))
    st.markdown("Label: " + label_markdown(card))
    tags_table(card)
    with st.expander("How labels are judged against chance"):
        st.markdown(TAGS_NOTE)
    left, right = st.columns(2)
    with left:
        st.markdown("**Top tokens**")
        if images is None:
            show_tokens(card)
        if card["exclusive"]:
            st.caption("Never shared (every occurrence's top choice is this expert): "
                       + ", ".join(f"{literal(data.show_token(t['text']))} ×{t['n']}"
                                   for t in card["exclusive"]))
        st.markdown("**Contexts**")
        show_contexts(card, images, n_contexts)
    with right:
        partners = card["coactivation"]
        partners_table(partners["with"], "**Fires with** (same site)")
        if partners["feeds"]:
            partners_table(partners["feeds"]["experts"],
                           f"**Feeds** (next site, {literal(partners['feeds']['site'])})")
        past = history_caption(card["history"])
        if past:
            st.caption(past)
    ablation(handle, run, site, card)


def ablation(handle, run, site, card) -> None:
    key = ("experts_ablation", run, site, card["expert"])
    if st.button("Measure the output change when this expert is ablated",
                 key="experts_ablate", help="Runs the model on the run's first 16 inputs "
                 "with and without the expert; both runs are added to the store."):
        try:
            from routeviz.analysis.cards import expert_cards
            from routeviz.interventions.whatif import model_source

            runner = load_runner(model_source(run_config(handle, run)))
            with handle.lock:
                got = expert_cards(handle.store, run, site=site, expert=card["expert"],
                                   runner=runner, history=False)
            st.session_state[key] = got.cards[0]["ablation"]
        except (RoutevizError, OSError, ValueError) as exc:
            show_error(exc)
    change = st.session_state.get(key)
    if change:
        st.markdown(f"Ablated on {change['n_examples']} inputs: mean KL "
                    f"{change.get('mean_kl', 0):.3f} nats, {change.get('n_top1_changed', 0)} "
                    f"of {change.get('n_compared', 0)} top-1 predictions changed (run "
                    f"{literal(change['run'])} against {literal(change['against'])}).")


handle, run = page_run("Experts")
facts = run_facts(handle, run)
sites = facts["sites"]
expert_sites = sites[sites["kind"] == "expert"]["site"].tolist()
soft_sites = sites[sites["kind"] == "dispatch"]["site"].tolist()
if not expert_sites and soft_sites:  # Soft MoE: experts shown by their slots' top patches
    from app_pages.experts_soft import show_slots

    show_slots(handle, run, soft_sites)
    st.stop()
if not expert_sites:
    st.info(f"Run {run!r} has no expert decisions (kinds: {', '.join(facts['kinds']) or 'none'}).")
    st.stop()
if st.session_state.get("experts_site") not in expert_sites:
    linked = st.query_params.get("site")
    st.session_state["experts_site"] = linked if linked in expert_sites else expert_sites[0]

left, mid, right, last = st.columns([3, 2, 1, 2])
site = left.selectbox("Site", expert_sites, key="experts_site", format_func=data.short_site)
family = mid.selectbox("Label by", [CONTENT] + facts["tags"], key="experts_tag",
                       help="The tag families a label may name; by default the content "
                            "families (provenance such as `source` left out).")
n_contexts = right.number_input("Examples each", 1, 12, 4, key="experts_n")
min_count = last.slider("Minimum count", 1, 50, 5, key="experts_min",
                        help="Tokens and tag values routed to an expert fewer times than this "
                             "are left out of its card.")
expert = chosen_expert(site)
state_to_url(site=site, expert=expert)
try:
    result = cards_of(handle, run, site, expert, () if family == CONTENT else (family,),
                      int(min_count), 12)
except RoutevizError as exc:
    if expert is None:
        show_error(exc)
        st.stop()
    st.warning(f"{exc}; showing every expert of the site.")
    st.query_params.pop("expert", None)
    expert = None
    result = cards_of(handle, run, site, None, () if family == CONTENT else (family,),
                      int(min_count), 12)
images = images_for(handle, run, result.cards, result.modality)

if expert is not None:
    full_view(handle, run, site, result.cards[0], images, int(n_contexts))
    st.stop()

search_col, filter_col = st.columns(2)
search = search_col.text_input("Find a token", key="experts_search",
                               help="Tokens containing this text (any case): the experts they "
                                    "go to at this site, with P(expert | token).").strip()
values = tag_values(handle, run) if facts["tags"] else pd.DataFrame(columns=["name", "value"])
choice = filter_col.selectbox("Only experts that get tag value", [ANY] + [
    f"{n}={v}" for n, v in zip(values["name"], values["value"])], key="experts_value")
if search:
    token_search(handle, run, site, search)
cards = result.cards
chosen = value_filter(handle, run, site, choice, int(min_count))
if chosen is not None:
    cards = sorted((c for c in cards if c["expert"] in chosen),
                   key=lambda c: chosen.index(c["expert"]))
if len(cards) > MAX_EXPERTS:
    st.caption(f"Showing the {MAX_EXPERTS} most specialised of {len(cards)} experts.")
    cards = cards[:MAX_EXPERTS]
n_labelled = sum(c["strength"] > 0 for c in cards)
st.caption(f"{len(cards)} experts at {literal(site)} · unit: {result.unit} · {n_labelled} "
           "with a tag beyond chance, strongest first; open a card for its full view.")
with st.expander("How labels and typical tokens are judged"):
    st.markdown(TAGS_NOTE + "\n\n" + SCORE_NOTE)
if images is None:
    st.html(CARD_CSS)  # the text cards' style, once
for start in range(0, len(cards), PER_ROW):
    for col, card in zip(st.columns(PER_ROW), cards[start:start + PER_ROW]):
        with col.container(border=True):
            grid_card(card, run, images, int(n_contexts))
