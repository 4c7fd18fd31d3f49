"""Expert identity across the steps of a series: which expert at step t+1 "is" expert e of
step t. An expert's profile is the set of probe tokens it was chosen for (any rank); two
experts' similarity is the cosine of those indicator vectors,
n_both / sqrt(n_from · n_to). Experts are matched one-to-one per site and pair of steps
by the Hungarian method (scipy's linear_sum_assignment; a greedy best-first match where
scipy is missing), so "expert 3 became expert 5" reads off a row.

    identity(store, series) -> frame: site, from_step, to_step, expert, matched,
                               similarity, changed (matched is another expert)
    matched is -1 where the pairing has similarity 0 (an expert idle at either step, or one
    whose tokens all went to experts already matched): it became no one in particular.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from routeviz.metrics import _common as common
from routeviz.store.series import SERIES_CTE, series_runs

COLUMNS = ["site", "from_step", "to_step", "expert", "matched", "similarity", "changed"]
NO_MATCH = -1  # `matched` of an expert that shares no probe token with any expert it could pair

OVERLAP = """
WITH """ + SERIES_CTE + """,
pairs AS (SELECT run, lead(run) OVER (ORDER BY step, run) AS next_run FROM sr),
r AS (SELECT run, site, example * 16777216 + token AS u, choice FROM routes
      WHERE kind = 'expert' AND run IN (SELECT run FROM sr))
SELECT p.run, a.site, a.choice AS expert, b.choice AS matched, count(*) AS n_both
FROM pairs p JOIN r a ON a.run = p.run
JOIN r b ON b.run = p.next_run AND b.site = a.site AND b.u = a.u
GROUP BY p.run, a.site, a.choice, b.choice"""

SIZES = """
WITH """ + SERIES_CTE + """
SELECT run, site, choice AS expert, count(*) AS n FROM routes
WHERE kind = 'expert' AND run IN (SELECT run FROM sr) GROUP BY run, site, choice"""


def match(similarity: np.ndarray) -> np.ndarray:
    """For each row, the column it is matched to (one-to-one, maximal total similarity)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # greedy: the most similar free pair first
        matched = np.full(similarity.shape[0], -1)
        taken = set()
        for flat in np.argsort(-similarity, axis=None, kind="stable"):
            row, col = divmod(int(flat), similarity.shape[1])
            if matched[row] < 0 and col not in taken:
                matched[row] = col
                taken.add(col)
        return matched
    rows, cols = linear_sum_assignment(-similarity)
    matched = np.full(similarity.shape[0], -1)
    matched[rows] = cols
    return matched


def identity(store, series: str) -> pd.DataFrame:
    """Each expert of each step matched to its most similar expert at the next step."""
    runs = series_runs(store, series)
    if len(runs) < 2:
        return pd.DataFrame(columns=COLUMNS)
    names = runs.run.tolist()
    overlap = common.df(store, OVERLAP, {"series": series})
    sizes = common.df(store, SIZES, {"series": series})
    n_size = {(r, s, int(e)): int(n) for r, s, e, n in
              zip(sizes.run, sizes.site, sizes.expert, sizes.n)}
    rows = []
    for (run, next_run), (step, next_step) in zip(zip(names[:-1], names[1:]),
                                                  zip(runs.step[:-1], runs.step[1:])):
        sites = common.sites_of(store, run, "expert").site.tolist()
        width = common.n_experts_by_site(store, run, sites)
        nxt = common.n_experts_by_site(store, next_run, sites)
        for site in sites:
            n = max(width[site], nxt.get(site, 0))
            both = np.zeros((n, n))
            here = overlap[(overlap.run == run) & (overlap.site == site)]
            both[here.expert.astype(int), here.matched.astype(int)] = here.n_both
            n_from = np.array([n_size.get((run, site, e), 0) for e in range(n)], dtype=float)
            n_to = np.array([n_size.get((next_run, site, e), 0) for e in range(n)], dtype=float)
            denom = np.sqrt(np.outer(n_from, n_to))
            similarity = np.divide(both, denom, out=np.zeros_like(both), where=denom > 0)
            for expert, matched in enumerate(match(similarity)):
                score = float(similarity[expert, matched])
                if score == 0.0:  # shares no probe token with any free expert: no match
                    matched = NO_MATCH
                rows.append({"site": site, "from_step": int(step), "to_step": int(next_step),
                             "expert": expert, "matched": int(matched), "similarity": score,
                             "changed": bool(matched not in (expert, NO_MATCH))})
    return pd.DataFrame(rows, columns=COLUMNS)
