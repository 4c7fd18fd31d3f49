"""What the Experts page draws for one card (routeviz.analysis.cards): the compact card of
the grid and the full view. Every piece of user text (token texts, tag values, site names)
goes through `literal` in markdown, or into st.text / st.dataframe, never raw HTML."""

from __future__ import annotations

import html
import io
import re
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from app_pages.common import cached
from routeviz.figures import data

GRID_TOKENS = 5  # token rows in a grid card
ROW_PX, HEAD_PX = 35, 38

TAGS_NOTE = ("A label names the tag values this expert takes **beyond chance**. *share*: of "
             "the units routed here, the fraction carrying the value; *chance*: its share of "
             "all units at this site, what a router blind to it would give; the *95% band* is "
             "where the share falls when tag values are shuffled across the site's units "
             "(the permutation Focus/Cover use, exact); *p*: the chance of this share or more "
             "under that shuffle. A value counts when p is below 0.05 / m (Bonferroni over "
             "the site's m tests), it has at least the minimum count, and its share is at "
             "least 1.5× chance.")


def literal(text) -> str:
    """User text shown in markdown as itself (markdown and HTML characters escaped)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$&])", r"\\\1", str(text))


def card_url(run: str, site: str, expert: int) -> str:
    return "?" + urlencode({"page": "experts", "run": run, "site": site, "expert": int(expert)})


def table_height(n_rows: int) -> int:
    return HEAD_PX + ROW_PX * max(n_rows, 1)


def label_markdown(card: dict) -> str:
    beyond = [t for t in card["tags"] if t["beyond_chance"]]
    if not beyond:
        return "*no tag beyond chance*"
    return " · ".join(f"**{literal(t['family'])}={literal(t['value'])}** {t['lift']:.1f}× chance"
                      for t in beyond[:3])


def head_markdown(card: dict) -> str:
    load = card["load"]
    starved = " · **starved**" if load["starved"] else ""
    return (f"**Expert {card['expert']}** · load {load['share']:.1%} · rank {load['rank']} "
            f"of {load['n_experts']}{starved}")


def token_frame(card: dict, full: bool = False) -> pd.DataFrame:
    """Top tokens: the grid's three narrow columns (token, here/seen, score), or the full
    view's five."""
    tokens = card["tokens"] if full else card["tokens"][:GRID_TOKENS]
    names = [data.show_token(t["text"]) for t in tokens]
    scores = [round(t["score"], 2) for t in tokens]
    if not full:
        return pd.DataFrame({"token": names, "here/seen": [f"{t['n']}/{t['seen']}"
                                                           for t in tokens], "score": scores})
    return pd.DataFrame({"token": names, "here": [t["n"] for t in tokens],
                         "seen": [t["seen"] for t in tokens],
                         "P(expert | token)": [round(t["p_expert"], 3) for t in tokens],
                         "score": scores})


def show_tokens(card: dict) -> None:
    """The full view's top tokens, a sortable table (a grid card's are in grid_card_html)."""
    frame = token_frame(card, full=True)
    if frame.empty:
        st.caption("No token routed here the minimum count of times.")
        return
    st.dataframe(frame, hide_index=True, height=table_height(len(frame)), width="stretch")


def show_contexts(card: dict, images, limit: int) -> None:
    """Text contexts with the token marked ⟦…⟧, or patches / whole images (per example)."""
    contexts = card["contexts"][:limit]
    if images is None:
        if contexts:
            st.text("\n".join(data.context_line(c["left"], c["text"], c["right"])
                              for c in contexts))
        return
    pictures = []
    for c in contexts:
        if c["example"] not in images.index:
            continue
        row = images.loc[c["example"]]
        if row["image"] is None:
            continue
        png = bytes(row["image"])
        if c["token"] >= 0 and row["grid_w"]:
            pictures.append(data.patch_crop(png, int(row["grid_h"]), int(row["grid_w"]),
                                            int(c["token"])))
        else:  # a whole-example decision: the whole image
            pictures.append(thumbnail(png))
    if pictures:
        st.image(pictures, width=56)


def thumbnail(png: bytes, size: int = 56):
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return image.resize((size, size), Image.NEAREST)


CARD_CSS = ("<style>.rv-card{font-size:1rem;line-height:1.6}.rv-card p{margin:0 0 .6rem}"
            ".rv-card table{border-collapse:collapse;width:100%;font-size:.875rem;margin:0 0 .6rem}"
            ".rv-card th,.rv-card td{border:1px solid rgba(49,51,63,.1);padding:.25rem .5rem;"
            "text-align:left}.rv-card th{color:rgba(49,51,63,.6);font-weight:400}"
            ".rv-card pre{font-size:.875rem;white-space:pre-wrap;word-break:break-all;"
            "font-family:inherit;margin:0 0 .6rem}</style>")


def grid_card_html(card: dict, run: str, n_contexts: int) -> str:
    """A text run's grid card as one HTML block (what grid_card draws as five elements:
    head, label, top tokens, contexts, link); every piece of user text escaped. One element
    instead of five per card is most of the grid's cost in the browser (issue 25)."""
    esc = html.escape
    load = card["load"]
    head = (f"<b>Expert {card['expert']}</b> · load {load['share']:.1%} · rank {load['rank']} "
            f"of {load['n_experts']}" + (" · <b>starved</b>" if load["starved"] else ""))
    beyond = [t for t in card["tags"] if t["beyond_chance"]]
    label = (" · ".join(f"<b>{esc(str(t['family']))}={esc(str(t['value']))}</b> "
                        f"{t['lift']:.1f}× chance" for t in beyond[:3])
             or "<i>no tag beyond chance</i>")
    frame = token_frame(card)
    if frame.empty:
        tokens = "<p class='rv-caption'>No token routed here the minimum count of times.</p>"
    else:
        rows = "".join(f"<tr><td>{esc(t)}</td><td>{esc(n)}</td><td>{s:.2f}</td></tr>"
                       for t, n, s in frame.itertuples(index=False))
        tokens = f"<table><tr><th>token</th><th>here/seen</th><th>score</th></tr>{rows}</table>"
    contexts = card["contexts"][:n_contexts]
    lines = "\n".join(data.context_line(c["left"], c["text"], c["right"]) for c in contexts)
    return (f"<div class='rv-card'><p>{head}</p><p>{label}</p>{tokens}"
            + (f"<pre>{esc(lines)}</pre>" if contexts else "")
            + f"<a href='{esc(card_url(run, card['site'], card['expert']))}' target='_blank' "
              "rel='noopener'>Open card →</a></div>")  # a new tab, as a markdown link opens


def grid_card(card: dict, run: str, images, n_contexts: int) -> None:
    if images is None:  # a text run: one element (its style: CARD_CSS, drawn once a page)
        st.html(grid_card_html(card, run, n_contexts))
        return
    st.markdown(head_markdown(card))  # an image run: patches or images as contexts
    st.markdown(label_markdown(card))
    show_contexts(card, images, n_contexts)
    st.markdown(f"[Open card →]({card_url(run, card['site'], card['expert'])})")


def tags_table(card: dict) -> None:
    beyond = [t for t in card["tags"] if t["beyond_chance"]]
    test = card["test"]
    if beyond:
        st.dataframe(pd.DataFrame({
            "tag value": [f"{t['family']}={t['value']}" for t in beyond],
            "units here": [t["count"] for t in beyond],
            "share": [f"{t['share']:.0%}" for t in beyond],
            "chance": [f"{t['chance']:.0%}" for t in beyond],
            "95% band": [f"{t['chance_lo']:.0%}–{t['chance_hi']:.0%}" for t in beyond],
            "× chance": [round(t["lift"], 2) for t in beyond],
            "p": [f"{t['p_value']:.1e}" for t in beyond]}),
            hide_index=True, height=table_height(len(beyond)), width="stretch")
    else:
        closest = card["tags"][0] if card["tags"] else None
        st.caption("No tag value beyond chance" + (
            f"; the closest, {literal(closest['family'])}={literal(closest['value'])}, is "
            f"{closest['lift']:.2f}× chance (p = {closest['p_value']:.2g})" if closest else "")
            + ".")
    if not test["m"]:
        st.caption("No tag values to test: the run records no tags (or only provenance such "
                   "as `source`), so no label can be claimed.")
        return
    st.caption(f"{card['n_tags_tested']} tag values tested at this site's expert "
               f"(m = {test['m']} tests at the site, threshold p < {test['threshold']:.1e}); "
               f"families: {literal(', '.join(test['families']) or '(none)')}"
               + (f"; left out: {literal(', '.join(test['left_out']))}"
                  if test["left_out"] else "") + ".")


def partners_table(rows: list, title: str) -> None:
    if not rows:
        return
    st.markdown(title)
    st.dataframe(pd.DataFrame({
        "expert": [r["expert"] for r in rows], "P(it | this)": [round(r["p"], 3) for r in rows],
        "chance": [round(r["chance"], 3) for r in rows],
        "× chance": [round(r["lift"], 2) for r in rows], "units": [r["n"] for r in rows],
        "beyond chance": [r["beyond_chance"] for r in rows]}),
        hide_index=True, height=table_height(len(rows)), width="stretch")


def history_caption(history: dict | None) -> str | None:
    if not history:
        return None
    before = ", ".join(f"step {b['step']}: expert {b['expert']} (similarity "
                       f"{b['similarity']:.2f})" for b in history["before"]) or "no earlier step"
    formed = (f"its label {literal(history['label_value'])} first appears at step "
              f"{history['formed_step']} and holds since" if history["formed_step"] is not None
              else "no label to trace")
    return (f"Series {literal(history['series'])}, step {history['step']}: {formed}. "
            f"It was {before}.")


def with_card_labels(cards: list, routes, labels: dict) -> list:
    """Inspect's route cards (escaped HTML lines) with one line per expert the token passed,
    naming its expert card's label (routeviz.analysis.cards.passed_labels)."""
    from routeviz.analysis.cards import passed_labels

    out = []
    for card, passed in zip(cards, passed_labels(routes, labels, len(cards))):
        lines = [f"{data.plot_text(data.short_site(s))} e{e}: {data.plot_text(label)}"
                 for s, e, label in passed]
        out.append(card + ("<br>expert cards:<br>" + "<br>".join(lines) if lines else ""))
    return out + cards[len(out):]


def _card_labels(store, run):
    from routeviz.analysis.cards import card_labels

    return card_labels(store, run)


expert_card_labels = cached(_card_labels)
