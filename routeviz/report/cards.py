"""The report's expert-card section: every expert of every site with its label (the tag
values beyond chance, routeviz.analysis.cards), load, top tokens, the tokens it never
shares and the experts it fires with and feeds — one HTML section in report.html, the same
in report.md, and experts.csv with the label columns. Every user string is escaped
(html.escape in HTML, report.markdown.md in Markdown)."""

from __future__ import annotations

import html
import io

import pandas as pd

from routeviz.analysis.cards import expert_cards
from routeviz.errors import RoutevizError
from routeviz.report.html import append_section
from routeviz.report.markdown import md

TITLE = "Expert cards"
TOKENS = 5  # top tokens named per card
LABEL_COLUMNS = ["label", "strength", "share", "chance", "chance_lo", "chance_hi", "p_value",
                 "beyond_chance"]


def intro(rule: dict) -> str:
    left = f"; left out: {', '.join(rule['left_out'])}" if rule["left_out"] else ""
    return ("A label names the tag values an expert takes beyond chance: its share of the "
            "expert's units against the share a router blind to the tag would give (the 95% "
            "band: tag values shuffled across the site's units, exact). A value counts when "
            f"p < {rule['alpha']} / m (Bonferroni over the site's m tests), it has at least "
            f"{rule['min_count']} units and {rule['min_lift']}× chance; otherwise the card says "
            f"\"no tag beyond chance\". Unit: {rule['unit']}. Families: "
            f"{', '.join(rule['families']) or '(none)'}{left}. Experts are listed strongest "
            "label first.")


def _tokens(card: dict) -> str:
    return ", ".join(f"{t['text']!r} ×{t['n']}/{t['seen']}" for t in card["tokens"][:TOKENS])


def _partners(rows: list) -> str:
    return ", ".join(f"e{r['expert']} {r['p']:.0%} (chance {r['chance']:.0%})"
                     + (" *" if r["beyond_chance"] else "") for r in rows)


def card_rows(cards: list) -> pd.DataFrame:
    """One row per card: the columns the section's tables show, as plain strings."""
    rows = []
    for c in cards:
        feeds = c["coactivation"]["feeds"]
        past = c["history"]
        rows.append({
            "site": c["site"], "expert": str(c["expert"]),
            "load": f"{c['load']['share']:.1%} (#{c['load']['rank']})", "label": c["label"],
            "top tokens": _tokens(c),
            "never shared": ", ".join(repr(t["text"]) for t in c["exclusive"][:TOKENS]),
            "fires with": _partners(c["coactivation"]["with"]),
            "feeds": _partners(feeds["experts"]) if feeds else "",
            "formed": "" if not past or past["formed_step"] is None
            else f"step {past['formed_step']}"})
    return pd.DataFrame(rows)


COLUMNS = ["expert", "load", "label", "top tokens", "never shared", "fires with", "feeds",
           "formed"]


def cards_markdown(result) -> str:
    frame = card_rows(result.cards)
    out = [f"\n## {TITLE}\n", md(intro(result.rule)) + "\n",
           "(* after a partner: beyond chance.)\n"]
    for site, group in frame.groupby("site", sort=False):
        columns = [c for c in COLUMNS if c != "formed" or group[c].any()]
        out.append(f"\n### {md(site)}\n")
        out.append("| " + " | ".join(columns) + " |")
        out.append("|" + "---|" * len(columns))
        out.extend("| " + " | ".join(md(row[c]) for c in columns) + " |"
                   for _, row in group.iterrows())
    return "\n".join(out) + "\n"


def cards_html(result) -> str:
    frame = card_rows(result.cards)
    parts = [f'<section id="expert-cards"><h2>{html.escape(TITLE)}</h2>',
             f"<p>{html.escape(intro(result.rule))} (* after a partner: beyond chance.)</p>"]
    for site, group in frame.groupby("site", sort=False):
        columns = [c for c in COLUMNS if c != "formed" or group[c].any()]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f'<td class="{"label" if c == "label" else ""}">'
                                         f"{html.escape(str(row[c]))}</td>" for c in columns)
                       + "</tr>" for _, row in group.iterrows())
        parts.append(f"<h3>{html.escape(site)}</h3>"
                     f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "".join(parts) + "</section>"


def labelled_experts_csv(data: bytes, result) -> bytes:
    """experts.csv with the card label and strength on every row, and on tag rows the test:
    share, chance, chance_lo, chance_hi, p_value, beyond_chance (empty where not tested)."""
    frame = pd.read_csv(io.BytesIO(data), dtype={"site": str, "name": str, "value": str},
                        keep_default_na=False, na_values=[""])
    labels = pd.DataFrame([{"site": c["site"], "expert": c["expert"], "label": c["label"],
                            "strength": c["strength"]} for c in result.cards],
                          columns=["site", "expert", "label", "strength"])
    tests = result.tests if result.tests is not None else pd.DataFrame(
        columns=["site", "expert", "family", "value"])
    tests = tests.rename(columns={"family": "name"})[
        ["site", "expert", "name", "value", "share", "chance", "chance_lo", "chance_hi",
         "p_value", "beyond_chance"]].assign(profile="tag")
    if len(frame):
        frame["expert"] = frame.expert.astype("int64")
        frame = frame.merge(labels, on=["site", "expert"], how="left")
        frame = frame.merge(tests, on=["site", "expert", "profile", "name", "value"],
                            how="left")
    else:
        frame = frame.reindex(columns=list(frame.columns) + LABEL_COLUMNS)
    return frame.to_csv(index=False, float_format="%.6g").encode()


def card_result(store, run: str, tags=None):
    """The run's expert cards (routeviz.analysis.cards), or None for a run without expert
    routes or cards."""
    try:
        result = expert_cards(store, run, tags=tags)
    except RoutevizError:
        return None
    return result if result.cards else None


def add_cards_section(store, run: str, files: dict, tags=None, result=None) -> None:
    """Append the section to report.md, insert it before report.html's </body>, and add
    the label columns to experts.csv; no change for a run without expert routes. `result`:
    the cards already computed (`card_result`), else they are computed here."""
    if result is None:
        result = card_result(store, run, tags=tags)
    if result is None:
        return
    append_section(files, cards_markdown(result), cards_html(result))
    if "experts.csv" in files:
        files["experts.csv"] = labelled_experts_csv(files["experts.csv"], result)
