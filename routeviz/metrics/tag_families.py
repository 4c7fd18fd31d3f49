"""Which tag families describe content, for Focus/Cover's default choice.

Provenance families (where an example came from: `source`, `file`, ids) have about one value
per example; pooled with content families they add many tag values no subnetwork can stand
for and pull Cover towards 0. A family is left out of the default when its name is on
PROVENANCE, or when it is given per example and has nearly one value per example (more than
ID_MIN_VALUES values and at least ID_FRACTION of its examples' count).

`focus_families(store, run, tags)` applies the rule to a run — the one choice that
focus_cover (and so `routeviz metrics`, the report, the Specialization and Compare pages)
makes when no family is named — and returns the families pooled and left out, with why.
`routeviz.runs.sampling` orders the families it stratifies over by the same rule."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from routeviz.metrics import _common as common
from routeviz.store.query import split_runs

PROVENANCE = frozenset({"source", "file", "filename", "file_name", "path", "url", "uri", "id",
                        "uid", "uuid", "doc_id", "example_id", "index", "idx", "split"})
ID_MIN_VALUES = 8
ID_FRACTION = 0.5


def content_families(stats: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """stats: name, n_values, n_examples, per_token (store.tag_family_stats(run)).
    Returns (the content families, {left-out family: why})."""
    kept, left_out = [], {}
    for rec in stats.itertuples(index=False):
        name = str(rec.name)
        if name.lower() in PROVENANCE:
            left_out[name] = "provenance"
        elif (not bool(rec.per_token) and int(rec.n_values) > ID_MIN_VALUES
              and int(rec.n_values) >= ID_FRACTION * int(rec.n_examples)):
            left_out[name] = f"{int(rec.n_values)} values over {int(rec.n_examples)} examples"
        else:
            kept.append(name)
    return kept, left_out


CHOSEN = "not chosen"  # why a family is left out when the caller named the others


@dataclass(frozen=True)
class TagFamilies:
    """The tag families a Focus/Cover pools, and those it leaves out with why: the one rule
    the Specialization page, `routeviz metrics` and the report share."""

    pooled: list  # family names, sorted
    left_out: dict  # family -> why ("provenance", "N values over M examples", CHOSEN)
    chosen: bool  # named by the caller (--tag, the page's picker), not the default rule

    def as_json(self) -> dict:
        """`metrics --json`'s "tag_families"."""
        return {"pooled": list(self.pooled), "left_out": list(self.left_out),
                "why_left_out": dict(self.left_out),
                "rule": "chosen" if self.chosen else "content families (provenance left out)"}

    @classmethod
    def from_json(cls, data: dict) -> TagFamilies:
        """Back from `as_json` (a summary's "tag_families")."""
        return cls(list(data["pooled"]), dict(data["why_left_out"]),
                   chosen=data.get("rule") == "chosen")

    def describe(self) -> str:
        """One line for every pooled Focus/Cover headline."""
        text = "tag families pooled: " + (", ".join(self.pooled) or "none")
        if self.left_out:
            text += "; left out: " + ", ".join(f"{name} ({why})"
                                                for name, why in self.left_out.items())
        return text


def focus_families(store, run: str, tags=None) -> TagFamilies:
    """The families Focus/Cover pools for `run`: the named ones (`tags`, each must exist),
    else its content families (all of them when every family looks like provenance)."""
    pooled = common.require_tags(store, run, tags)
    return _families(store, run, pooled, tags, store.tag_family_stats(run))


def focus_families_many(store, runs, tags=None) -> dict:
    """{run: focus_families(store, run, tags)} for several runs, with one query for the
    family statistics of them all (the Timeline's series)."""
    pooled = {run: common.require_tags(store, run, tags) for run in runs}
    stats = common.df(store,
        "SELECT run, name, count(DISTINCT value) AS n_values, count(DISTINCT example) AS "
        "n_examples, max(token) >= 0 AS per_token FROM tags WHERE list_contains($runs, run) "
        "GROUP BY run, name ORDER BY run, name", {"runs": list(runs)})
    stats = split_runs(stats, runs)
    return {run: _families(store, run, pooled[run], tags, stats[run]) for run in runs}


def _families(store, run, pooled, tags, stats) -> TagFamilies:
    kept, why = content_families(stats)
    if tags:
        left = {name: why.get(name, CHOSEN) for name in common.tag_names(store, run)
                if name not in pooled}
        return TagFamilies(pooled, left, chosen=True)
    if not kept:  # nothing but provenance: pooled rather than nothing to score
        return TagFamilies(sorted(pooled), {}, chosen=False)
    return TagFamilies(sorted(kept), {n: why[n] for n in sorted(why)}, chosen=False)
