"""A seeded subset of a dataset: `routeviz trace --dataset NAME --limit N` and the Runs
page's Examples count.

The head of a dataset is rarely a fair sample (the first 512 DAE-Syn images all show the
letter A; the first stdlib chunks all come from a few modules), so the subset is drawn:

- "stratified": over the items' example-tag families (content first, as Focus/Cover's
  default: metrics.tag_families), each value of each family keeps its share of the
  dataset as nearly as a greedy pick can (every step takes the item whose values are most
  under-represented so far; ties go to a seeded shuffle);
- "shuffled": a seeded random sample where the items carry no tag family to stratify over,
  or the dataset is too large for the greedy pick (MAX_WORK).

The picked items keep the dataset's order. `Subset.config` goes into the run's config
under "sampling" (seed, strategy, n of total, the families), and `Subset.warnings` says
where a family still has a single value in the subset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from routeviz.errors import RoutevizError
from routeviz.metrics.tag_families import content_families

MAX_WORK = 200_000_000  # items × picks × families above which the greedy pick is skipped


@dataclass
class Subset:
    items: list
    config: dict | None  # the run config's "sampling" (None: every item, nothing drawn)
    warnings: list = field(default_factory=list)


def _families(items: list) -> dict[str, list[str]]:
    """{family: one value per item ("" where the item lacks it)} for every example-level
    family with one plain value per item (per-patch lists are not stratified over)."""
    names = dict.fromkeys(name for item in items for name in item.tags)
    out = {}
    for name in names:
        values = [item.tags.get(name, "") for item in items]
        if any(isinstance(v, (list, tuple, dict, np.ndarray)) for v in values):
            continue
        out[name] = ["" if v is None else str(v) for v in values]
    return out


def _stratify_order(families: dict[str, list[str]]) -> list[str]:
    """Content families first (Focus/Cover's rule), then provenance ones."""
    stats = pd.DataFrame([(name, len(set(values)), len(values), False)
                          for name, values in families.items()],
                         columns=["name", "n_values", "n_examples", "per_token"])
    content, left_out = content_families(stats)
    return [*content, *left_out]


def _greedy(codes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n row indices of codes [N, F] (value ids per family) whose value counts track the
    dataset's shares: step t takes the row maximising sum_f (share·t − picked so far)."""
    total, n_families = codes.shape
    order = rng.permutation(total)  # argmax takes the first best: ties go to the shuffle
    codes = codes[order]
    share = np.zeros(total)  # sum over families of the row's values' shares
    penalty = np.zeros(total)  # sum over families of how often its values were picked
    for f in range(n_families):
        counts = np.bincount(codes[:, f])
        share += counts[codes[:, f]] / total
    taken = np.zeros(total, dtype=bool)
    picked = []
    for step in range(n):
        gain = share * (step + 1) - penalty
        gain[taken] = -np.inf
        row = int(np.argmax(gain))
        taken[row] = True
        picked.append(row)
        for f in range(n_families):
            penalty += codes[:, f] == codes[row, f]
    return order[np.asarray(picked, dtype=np.int64)]


def sample_items(items: list, limit: int | None, seed: int = 0) -> Subset:
    """At most `limit` of `items` (see the module docstring); None: all of them."""
    if limit is None:
        return Subset(list(items), None)
    if limit < 1:
        raise RoutevizError(f"--limit must be 1 or more, got {limit}")
    total = len(items)
    families = _families(items)
    names = _stratify_order(families)
    config = {"seed": int(seed), "n": min(int(limit), total), "of": total,
              "families": names}
    if limit >= total:
        return Subset(list(items), {**config, "strategy": "all"})
    rng = np.random.default_rng(seed)
    if names and total * limit * len(names) <= MAX_WORK:
        codes = np.stack([pd.factorize(pd.Series(families[name]))[0] for name in names],
                         axis=1)
        index = _greedy(codes, int(limit), rng)
        config["strategy"] = "stratified"
    else:
        index = rng.permutation(total)[:limit]
        config["strategy"] = "shuffled"
    index = np.sort(index)
    chosen = [items[i] for i in index]
    warnings = []
    for name in names:
        seen = {families[name][i] for i in index}
        n_values = len(set(families[name]))
        if len(seen) == 1 and n_values > 1:
            which = "the one example" if len(chosen) == 1 else f"all {len(chosen)} examples"
            warnings.append(f"{which} sampled {'has' if len(chosen) == 1 else 'have'} "
                            f"{name}={next(iter(seen))!r} (the dataset has {n_values} "
                            "values): raise --limit for a subset that spans them")
    return Subset(chosen, {**config, "warnings": warnings} if warnings else config, warnings)


def sample_dataset(name: str, limit: int | None, seed: int = 0) -> Subset:
    """Dataset `name` (routeviz.plugins), or a seeded subset of `limit` of its items. A
    generated dataset (glyphs) makes more items than its default when asked for more."""
    from routeviz.plugins import load_dataset

    items = load_dataset(name)
    if limit is not None and limit > len(items):
        items = load_dataset(name, limit)
    return sample_items(items, limit, seed)
