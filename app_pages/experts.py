"""Experts: a gallery per site — each expert's typical tokens in context (or image patches),
its tag profile and its load share; a token search (which experts get a token) and a tag-value
filter (only the experts that get that value). Typical tokens and tags are ranked by a
count-aware score, the Wilson lower bound of P(expert | token) (routeviz.metrics.profiles)."""

import re

import pandas as pd
import streamlit as st

from app_pages.common import cached, metric, page_run, run_facts, show_error
from routeviz.errors import RoutevizError
from routeviz.figures import data

PER_ROW = 4
MAX_EXPERTS = 64
ANY = "(any)"


SCORE_NOTE = ("Typical tokens are ranked by **score**: the 95% Wilson lower bound of "
              "P(expert | token), the share of the token's occurrences routed to this expert "
              "(any rank). It discounts tokens seen only a few times, so a token seen twice "
              "does not outrank one routed 54 times in 60. `seen` counts the token's "
              "occurrences, `count` those routed here; tokens routed here fewer than the "
              "minimum count are left out. Tags are ranked the same way.")


def _images(store, run, examples):
    return store.example_images(run, examples)


def _experts_tag_values(store, run):
    return store.tag_values(run)


def _experts_of_value(store, run, site, name, value):
    return store.tag_value_experts(run, site, name, value)


def _experts_of_token(store, run, site, search):
    return store.token_experts(run, site, search)


example_images = cached(_images)
tag_values = cached(_experts_tag_values)
experts_of_value = cached(_experts_of_value)
experts_of_token = cached(_experts_of_token)


def literal(text: str) -> str:
    """User text shown in markdown as itself (markdown and HTML characters escaped)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$&])", r"\\\1", str(text))


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
    st.caption(f"Filtered to `{choice}`: {len(got)} experts get it at least {min_count} times; "
               + ", ".join(f"{int(e)} (P = {p:.2f})" for e, p in zip(got.expert, got.p)))
    return [int(e) for e in got.expert]

handle, run = page_run("Experts")
facts = run_facts(handle, run)
sites = facts["sites"]
expert_sites = sites[sites["kind"] == "expert"]["site"].tolist()
if not expert_sites:
    st.info(f"Run {run!r} has no expert decisions (kinds: {', '.join(facts['kinds']) or 'none'}).")
    st.stop()

left, mid, right, last = st.columns([3, 2, 1, 2])
site = left.selectbox("Site", expert_sites, key="experts_site", format_func=data.short_site)
family = mid.selectbox("Tag profile by", ["(all families)"] + facts["tags"], key="experts_tag")
n_contexts = right.number_input("Examples each", 1, 12, 5, key="experts_n")
min_count = last.slider("Minimum count", 1, 50, 5, key="experts_min",
                        help="Tokens and tag values routed to an expert fewer times than this "
                             "are left out of its list.")
search_col, filter_col = st.columns(2)
search = search_col.text_input("Find a token", key="experts_search",
                               help="Tokens containing this text (any case): the experts they "
                                    "go to at this site, with P(expert | token).").strip()
values = tag_values(handle, run) if facts["tags"] else pd.DataFrame(columns=["name", "value"])
choice = filter_col.selectbox("Only experts that get tag value", [ANY] + [
    f"{n}={v}" for n, v in zip(values["name"], values["value"])], key="experts_value")

try:
    profile = metric(handle, "expert_profiles", run, site=site, contexts=int(n_contexts),
                     tag=None if family == "(all families)" else family,
                     min_count=int(min_count))
    load = metric(handle, "load", run)
except RoutevizError as exc:
    show_error(exc)
    st.stop()

if search:
    token_search(handle, run, site, search)
experts = load.experts[load.experts["site"].astype(str) == site].sort_values("expert")
chosen = value_filter(handle, run, site, choice, int(min_count))
if chosen is not None:
    experts = experts.set_index("expert").loc[[e for e in chosen if e in set(
        experts.expert)]].reset_index()
if len(experts) > MAX_EXPERTS:
    st.caption(f"Showing the {MAX_EXPERTS} busiest of {len(experts)} experts.")
    experts = experts.nlargest(MAX_EXPERTS, "count").sort_values("expert")
is_image = facts["modality"] == "image"
crops_from = None
if is_image and len(profile.examples):
    crops_from = example_images(handle, run, tuple(sorted(set(profile.examples["example"]))))
    crops_from = crops_from.set_index("example")

st.caption(f"{len(experts)} experts at `{site}` · unit: {profile.unit}.")
with st.expander("How typical tokens are ranked"):
    st.markdown(SCORE_NOTE)
rows = [experts.iloc[i:i + PER_ROW] for i in range(0, len(experts), PER_ROW)]
for chunk in rows:
    for col, rec in zip(st.columns(PER_ROW), chunk.itertuples(index=False)):
        e = int(rec.expert)
        with col.container(border=True):
            flag = " · **starved**" if bool(rec.starved) else ""
            st.markdown(f"**Expert {e}** · load {rec.share:.1%}{flag}")
            tokens = profile.tokens[profile.tokens["expert"] == e]
            if not len(tokens) and not is_image and profile.unit == "token":
                st.caption(f"No token routed here {int(min_count)}+ times.")
            if len(tokens) and not is_image:
                st.dataframe(pd.DataFrame({"token": [data.show_token(t) for t in tokens["text"]],
                                           "count": tokens["count"], "seen": tokens["n_text"],
                                           "P(e|token)": tokens["p_expert"].round(2),
                                           "score": tokens["score"].round(2)}),
                             hide_index=True, height=150)
            contexts = profile.examples[profile.examples["expert"] == e]
            if is_image and crops_from is not None:
                crops = []
                for c in contexts.itertuples(index=False):
                    if c.example in crops_from.index and c.token >= 0:
                        row = crops_from.loc[c.example]
                        if row["image"] is not None and row["grid_w"]:
                            crops.append(data.patch_crop(bytes(row["image"]), int(row["grid_h"]),
                                                         int(row["grid_w"]), int(c.token)))
                if crops:
                    st.image(crops, width=56)
            elif len(contexts):
                st.text("\n".join(data.context_line(c.left, c.text, c.right)
                                  for c in contexts.itertuples(index=False)))
            tags = profile.tags[profile.tags["expert"] == e].head(5)
            if len(tags):
                st.caption("Tags: " + ", ".join(
                    f"{n}={v} (P {p:.2f}, {int(c)})" for n, v, p, c in
                    zip(tags["name"], tags["value"], tags["p_expert"], tags["count"])))
