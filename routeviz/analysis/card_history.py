"""An expert card's past, for a run that is one step of a series (routeviz.store.series).

Identity across steps (routeviz.metrics.identity) says which expert of the step before
"is" this one (the Hungarian match of their probe-token sets). Following that chain back:

  before       [{step, expert, similarity}], newest first: the expert it was at each
               earlier step (expert -1: no expert of that step shares its tokens);
  formed_step  the earliest step from which its strongest label value (family=value) is
               beyond chance at every step of the chain up to this run
               (routeviz.analysis.card_tags); None when the card has no label.
"""

from __future__ import annotations

from routeviz.analysis.card_tags import tag_tests
from routeviz.metrics import _common as common
from routeviz.metrics.identity import NO_MATCH, identity
from routeviz.store.series import series_runs


def histories(store, run: str, tests, site: str | None = None) -> dict:
    """{(site, expert): history} for every expert tested in `tests` (the run's TagTests);
    {} when the run is not part of a series of two or more steps."""
    config = common.config_of(store, run)
    series, step = config.get("series"), config.get("step")
    if not series or step is None:
        return {}
    runs = series_runs(store, str(series), missing="empty")
    if len(runs) < 2 or run not in set(runs.run):
        return {}
    step = int(runs.step[runs.run == run].iloc[0])
    earlier = runs[runs.step < step].sort_values("step", ascending=False)
    matches = identity(store, str(series))
    past_tests = {r: tag_tests(store, r, site=site, tags=tests.families or None,
                               min_count=tests.min_count, alpha=tests.alpha,
                               min_lift=tests.min_lift)
                  for r in earlier.run}
    out = {}
    for (s, expert), rows in tests.tests.groupby(["site", "expert"], sort=False):
        s, expert = str(s), int(expert)
        strong = rows[rows.beyond_chance.astype(bool)].sort_values("lift", ascending=False)
        best = None if strong.empty else (strong.family.iloc[0], strong.value.iloc[0])
        before, formed, current, to_step = [], step if best else None, expert, step
        for r, prev_step in zip(earlier.run, earlier.step):
            prev_step = int(prev_step)
            hit = matches[(matches.site == s) & (matches.to_step == to_step)
                          & (matches.matched == current)]
            if hit.empty:
                break
            current = int(hit.expert.iloc[0])
            before.append({"step": prev_step, "expert": current,
                           "similarity": float(hit.similarity.iloc[0])})
            if formed == to_step and best is not None and _has_value(past_tests[r], s,
                                                                     current, best):
                formed = prev_step
            to_step = prev_step
            if current == NO_MATCH:
                break
        out[(s, expert)] = {"series": str(series), "step": step, "formed_step": formed,
                            "label_value": None if best is None else f"{best[0]}={best[1]}",
                            "before": before}
    return out


def _has_value(tests, site: str, expert: int, value: tuple) -> bool:
    rows = tests.of(site, expert)
    hit = rows[(rows.family == value[0]) & (rows.value == value[1])]
    return bool(len(hit) and hit.beyond_chance.iloc[0])
