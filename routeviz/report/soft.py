"""The report's soft-routing section (Soft MoE runs: kinds `soft` and `dispatch`): load as
combine mass per expert, combine entropy per token, dispatch entropy and effective tokens
per slot — the numbers `metrics.soft` gives the pages, as one Markdown and one HTML section
added to report.md and report.html."""

from __future__ import annotations

import html

import pandas as pd

from routeviz.metrics import _common as common
from routeviz.metrics import soft
from routeviz.report.html import append_section

TITLE = "Soft routing (Soft MoE)"
INTRO = ("Nothing is dropped and no expert is chosen: each slot takes a dispatch-weighted mix "
         "of all the tokens of an example, each token a combine-weighted mix of all slots. "
         "Load is each expert's share of the combine mass; combine entropy (nats) is how "
         "evenly a token spreads over the experts (log of the expert count at most); a slot's "
         "effective tokens, exp(dispatch entropy), is how many tokens it averages over.")


def soft_tables(store, run: str) -> dict[str, pd.DataFrame] | None:
    """{load, combine_entropy, slots} frames, or None when the run has no soft routing."""
    kinds = common.kinds_recorded(store, run)
    if "soft" not in kinds or "dispatch" not in kinds:
        return None
    load = soft.soft_load(store, run)[["site", "expert", "share", "dominant"]]
    entropy = soft.combine_entropy(store, run)[["site", "mean_entropy", "min_entropy",
                                                "max_entropy", "max_possible"]]
    slots = soft.dispatch_entropy(store, run)[["site", "slot", "expert", "mean_entropy",
                                               "effective_tokens", "mean_tokens"]]
    return {"load": load, "combine_entropy": entropy, "slots": slots}


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.round(3).astype(str)


def soft_markdown(tables: dict) -> str:
    out = [f"\n## {TITLE}\n", INTRO + "\n"]
    for name, frame in tables.items():
        frame = _rounded(frame)
        out.append(f"\n**{name.replace('_', ' ')}**\n")
        out.append("| " + " | ".join(frame.columns) + " |")
        out.append("|" + "---|" * len(frame.columns))
        out.extend("| " + " | ".join(v.replace("|", "\\|") for v in row) + " |"
                   for row in frame.itertuples(index=False))
    return "\n".join(out) + "\n"


def soft_html(tables: dict) -> str:
    parts = [f'<section id="soft-routing"><h2>{html.escape(TITLE)}</h2>',
             f"<p>{html.escape(INTRO)}</p>"]
    for name, frame in tables.items():
        frame = _rounded(frame)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                       for row in frame.itertuples(index=False))
        parts.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3>"
                     f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "".join(parts) + "</section>"


def add_soft_section(store, run: str, files: dict) -> None:
    """Append the section to files["report.md"] and insert it before report.html's
    </body>; no change for a run without soft routing."""
    tables = soft_tables(store, run)
    if tables is None:
        return
    append_section(files, soft_markdown(tables), soft_html(tables))
