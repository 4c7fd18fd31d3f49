"""Expert cards: what one expert does, in one place, each claim beside its chance value.

    expert_cards(store, run, site=None, expert=None, ...) -> CardSet(.cards, .rule)

One card per (site, expert), the same in the app (Experts page), the report and the CLI
(`routeviz experts`). Each card is a JSON-able dict:

  site, layer, expert
  label          the tag values the expert takes beyond chance, strongest first
                 ("token_type=string · 4.1× chance"), or "no tag beyond chance"
                 (routeviz.analysis.card_tags: exact permutation test, Bonferroni over the
                 site's tests, a minimum count and lift; `test` states m and the threshold)
  strength       the best such value's lift (0 without one): how the grid is sorted
  tags           the values beyond chance, else the three closest (each {family, value,
                 count, share, lift, chance, chance_lo, chance_hi, p_value, beyond_chance});
                 n_tags_tested, n_tags_beyond
  tokens         top token texts by the count-aware score (routeviz.metrics.profiles: the
                 Wilson lower bound of P(expert | token)), each {text, n, seen, p_expert, score}
  contexts       its highest-weight units: {example, token, left, text, right} slices of the
                 original text (image runs: the patch, or token -1 for a whole image)
  load           {count, share, rank (1 = busiest at the site), n_experts, starved}
  exclusive      token texts seen min_count+ times at the site whose every occurrence has
                 this expert as its top choice: {text, n}
  coactivation   {"with": experts chosen beside it at the site, "feeds": experts chosen at
                 the next expert site for its units}, each {expert, p, chance, lift, n,
                 beyond_chance} (routeviz.metrics.coactivation; binomial tail, Bonferroni)
  history        a run in a series: {series, step, formed_step, before: [{step, expert,
                 similarity}]} (routeviz.metrics.identity), else None
  ablation       the output change when it is ablated (routeviz.analysis.card_ablation),
                 where a model runner is given, else None
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from routeviz.analysis.card_history import histories
from routeviz.analysis.card_tags import ALPHA, MIN_COUNT, NO_LABEL, tag_tests
from routeviz.metrics import _common as common
from routeviz.metrics._sample import example_sample
from routeviz.metrics.coactivation import coactivation
from routeviz.metrics.load import load
from routeviz.metrics.profiles import expert_profiles

TAG_FIELDS = ["family", "value", "count", "share", "lift", "chance", "chance_lo", "chance_hi",
              "p_value", "beyond_chance"]
CLOSEST = 3  # tags listed for an expert with none beyond chance
PARTNERS = 3  # co-activated experts listed each way


@dataclass
class CardSet:
    cards: list  # card dicts, by site (model order) then strength, strongest first
    rule: dict  # the label test (card_tags.TagTests.rule)
    unit: str
    modality: str
    tests: pd.DataFrame = None  # every tag test behind the labels (card_tags.COLUMNS)


def expert_cards(store, run: str, site: str | None = None, expert: int | None = None,
                 tags=None, min_count: int = MIN_COUNT, top_tokens: int = 8,
                 contexts: int = 5, window: int = 4, history: bool = True,
                 max_units: int = 20_000, seed: int = 0, runner=None,
                 ablation_examples: int = 16) -> CardSet:
    """The cards of `run` (one site, one expert of it, or all); see the module docstring.
    runner: a loaded model (routeviz.runs.record.WarmRunner) to measure each card's
    ablation on up to `ablation_examples` of the run's inputs (new runs in the store)."""
    run = common.require_run(store, run)
    tests = tag_tests(store, run, site=site, tags=tags, min_count=min_count)
    loads = _ranked(load(store, run).experts)
    if site is not None:
        loads = loads[loads.site == site]
    if expert is not None:
        if int(expert) not in set(loads.expert.astype(int)):
            raise_unknown_expert(loads, site, expert)
        loads = loads[loads.expert == int(expert)]
    profile = expert_profiles(store, run, site=site, top=top_tokens, min_count=min_count,
                              contexts=contexts, window=window, tag_profiles=False)
    partners = _partners(store, run, max_units, seed)
    exclusive = _exclusive(store, run, site, min_count)
    past = histories(store, run, tests, site) if history else {}
    facts = store.facts(run)
    order = {name: i for i, name in enumerate(facts.sites_of("expert").site.tolist())}
    labels = tests.labels()
    tag_rows = _by_expert(tests.tests)
    tag_records = common.records(tests.tests[TAG_FIELDS])  # row i of tests.tests
    beyond_all = tests.tests.beyond_chance.astype(bool).to_numpy()
    lifts = tests.tests.lift.to_numpy(dtype=float)
    tokens = _tokens(profile.tokens)
    examples = _contexts(profile.examples)
    never_shared = _bucket(exclusive, common.records(exclusive[["text", "n"]]))
    cards = []
    for rec in loads.itertuples(index=False):
        s, e = str(rec.site), int(rec.expert)
        rows = tag_rows.get((s, e))
        at = rows.index.to_numpy() if rows is not None else np.zeros(0, dtype="int64")
        beyond = at[beyond_all[at]]  # rows already strongest first (card_tags.tag_tests)
        card = {"site": s, "layer": int(rec.layer), "expert": e,
                "label": labels.get((s, e), NO_LABEL)}
        card["strength"] = float(lifts[beyond].max()) if len(beyond) else 0.0
        shown = beyond if len(beyond) else at[:CLOSEST]
        card["tags"] = [dict(tag_records[i]) for i in shown]
        card["n_tags_tested"], card["n_tags_beyond"] = len(at), len(beyond)
        card["test"] = tests.rule(s)
        card["tokens"] = tokens.get((s, e), [])
        card["contexts"] = examples.get((s, e), [])
        card["load"] = {"count": int(rec.count), "share": float(rec.share),
                        "rank": int(rec.rank), "n_experts": int(rec.n_experts),
                        "starved": bool(rec.starved)}
        card["exclusive"] = never_shared.get((s, e), [])
        card["coactivation"] = partners(s, e)
        card["history"] = past.get((s, e))
        card["ablation"] = None
        cards.append(card)
    cards.sort(key=lambda c: (order.get(c["site"], len(order)), -c["strength"], c["expert"]))
    if runner is not None:
        from routeviz.analysis.card_ablation import ablation_change

        for card in cards:
            card["ablation"] = ablation_change(runner, store, run, card["site"], card["expert"],
                                               limit=ablation_examples)
    return CardSet(cards=cards, rule=tests.rule(), unit=tests.unit,
                   modality=str(facts.modality or "text"), tests=tests.tests)


def raise_unknown_expert(loads: pd.DataFrame, site, expert) -> None:
    from routeviz.errors import RoutevizError

    where = f" at site {site!r}" if site else ""
    known = sorted(set(loads.expert.astype(int)))
    raise RoutevizError(f"no expert {expert}{where}; experts: {known[0]}–{known[-1]}"
                        if known else f"no experts{where}")


def _ranked(experts: pd.DataFrame) -> pd.DataFrame:
    """load.experts with rank (1 = the most chosen at its site) and n_experts per site."""
    experts = experts.copy()
    experts["rank"] = experts.groupby("site")["count"].rank(method="min", ascending=False)
    experts["n_experts"] = experts.groupby("site").expert.transform("size")
    return experts


def _by_expert(frame: pd.DataFrame) -> dict:
    """{(site, expert): its rows, in the frame's order}: one pass, where a filter per card
    cost a frame scan per card (128 cards: seconds)."""
    if frame is None or frame.empty:
        return {}
    return {(str(site), int(expert)): rows
            for (site, expert), rows in frame.groupby(["site", "expert"], sort=False)}


def _bucket(frame: pd.DataFrame, records: list, site_column: str = "site",
            expert_column: str = "expert") -> dict:
    """{(site, expert): [records of its rows, in frame order]} (records[i]: row i)."""
    out: dict = {}
    for key, record in zip(zip(frame[site_column].astype(str).tolist(),
                               frame[expert_column].astype("int64").tolist()), records):
        out.setdefault(key, []).append(record)
    return out


def _tokens(tokens: pd.DataFrame) -> dict:
    """{(site, expert): its top tokens as cards list them}."""
    rows = zip(tokens.text.tolist(), tokens["count"].tolist(), tokens.n_text.tolist(),
               tokens.p_expert.tolist(), tokens.score.tolist())
    return _bucket(tokens, [{"text": str(text), "n": int(n), "seen": int(seen),
                             "p_expert": float(p), "score": float(score)}
                            for text, n, seen, p, score in rows])


def _contexts(examples: pd.DataFrame) -> dict:
    """{(site, expert): its highest-weight units as cards list them}."""
    rows = zip(examples.example.tolist(), examples.token.tolist(), examples.left.tolist(),
               examples.text.tolist(), examples.right.tolist())
    return _bucket(examples, [{"example": int(example), "token": int(token), "left": str(left),
                               "text": str(text), "right": str(right)}
                              for example, token, left, text, right in rows])


def _exclusive(store, run: str, site: str | None, min_count: int, top: int = 10) -> pd.DataFrame:
    """site, expert, text, n: texts whose every top choice at the site is one expert."""
    params = {"run": run, "min_count": int(min_count), "top": int(top)}
    where = ""
    if site is not None:
        where, params["site"] = " AND r.site = $site", site
    return common.df(store,
        "SELECT site, expert, text, n FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY site, expert ORDER BY n DESC, text) AS place"
        "  FROM (SELECT r.site, t.text, min(r.choice) AS expert, count(*) AS n FROM routes r "
        "    JOIN tokens t ON t.run = r.run AND t.example = r.example AND t.token = r.token "
        "    WHERE r.run = $run AND r.kind = 'expert' AND r.rank = 0 AND r.token >= 0"
        f"{where} GROUP BY r.site, t.text "
        "    HAVING count(DISTINCT r.choice) = 1 AND count(*) >= $min_count) per_text) ranked "
        "WHERE place <= $top ORDER BY site, expert, n DESC, text", params)


def _partners(store, run: str, max_units: int, seed: int):
    """A function (site, expert) -> {"with": [...], "feeds": {...}} from one co-activation
    pass (a seeded example sample above max_units tokens, as `metrics --json` reads it)."""
    from scipy.stats import binom

    sample, _, _ = example_sample(store, run, max_units, seed)
    res = coactivation(store, run, sample)

    def tested(pairs: pd.DataFrame) -> pd.DataFrame:
        pairs = pairs.copy()
        pairs["p_value"] = binom.sf(pairs.n_ab - 1, pairs.n_a, pairs.p_b.clip(0, 1))
        return pairs

    within = tested(res.within)
    within["m"] = within.groupby("site").a.transform("size")
    across = tested(res.across)
    across["m"] = across.groupby("from_site").a.transform("size")

    within_top = _listed(within, "site")
    across_top = _listed(across, "from_site")
    first = across.drop_duplicates(["from_site", "a"])  # the site a card feeds: its first row
    feeds_to = dict(zip(zip(first.from_site.astype(str).tolist(),
                            first.a.astype("int64").tolist()), first.to_site.astype(str).tolist()))

    def partners(site: str, expert: int) -> dict:
        out = {"with": within_top.get((site, expert), []), "feeds": None}
        if (site, expert) in feeds_to:
            out["feeds"] = {"site": feeds_to[(site, expert)],
                            "experts": across_top.get((site, expert), [])}
        return out

    return partners


def _listed(pairs: pd.DataFrame, site_column: str) -> dict:
    """{(site, a): its PARTNERS most likely partners b}, as cards list them."""
    pairs = pairs.sort_values([site_column, "a", "p_b_given_a", "n_ab", "b"],
                              ascending=[True, True, False, False, True])
    pairs = pairs.groupby([site_column, "a"], sort=False).head(PARTNERS)
    rows = zip(pairs.b.tolist(), pairs.p_b_given_a.tolist(), pairs.p_b.tolist(),
               pairs.lift.tolist(), pairs.n_ab.tolist(), pairs.p_value.tolist(),
               pairs.m.tolist())
    return _bucket(pairs, [{"expert": int(b), "p": float(p), "chance": float(chance),
                            "lift": float(lift), "n": int(n),
                            "beyond_chance": bool(n >= MIN_COUNT and p_value < ALPHA / m
                                                  and lift > 1)}
                           for b, p, chance, lift, n, p_value, m in rows],
                   site_column, "a")




def card_labels(store, run: str) -> dict:
    """{(site, expert): label} of every expert of `run` ({} for a run without tags or
    expert routes): what Inspect's hover names for each expert a token passed."""
    from routeviz.errors import RoutevizError

    try:
        return tag_tests(store, run).labels()
    except RoutevizError:
        return {}


def passed_labels(routes: pd.DataFrame, labels: dict, n_tokens: int) -> list:
    """Per token of one example, [(site, expert, label)] for each expert it was routed to
    (routes: the example's rows; model order, then rank), labels from `card_labels`."""
    out = [[] for _ in range(n_tokens)]
    experts = routes[(routes.kind == "expert") & (routes.token >= 0) & (routes.token < n_tokens)]
    for row in experts.sort_values(["layer", "site", "rank"]).itertuples(index=False):
        label = labels.get((str(row.site), int(row.choice)))
        if label is not None:
            out[int(row.token)].append((str(row.site), int(row.choice), label))
    return out


__all__ = ["NO_LABEL", "CardSet", "card_labels", "expert_cards", "passed_labels"]
