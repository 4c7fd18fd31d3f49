"""An expert card's ablation: how much the model's output changes without the expert.

The run's first `limit` inputs (recovered from the store: routeviz.interventions.whatif
.example_item) are recorded twice into the same store: once plainly (`<run>-cards-plain-N`,
recorded once and reused) and once with the expert ablated at its site
(`<run>-ablate-<site>-e<E>`, its config naming the intervention); the change is
routeviz.metrics.output_change between them (KL of the next-token or class distributions,
top-1 predictions changed). Both runs go into the store like any other.
"""

from __future__ import annotations

import re

from routeviz.interventions.intervene import intervene
from routeviz.interventions.whatif import example_item
from routeviz.metrics.output_change import output_change
from routeviz.runs.record import record
from routeviz.store import run_exists
from routeviz.store.schema import check_run_name

KEYS = ("kind", "n_compared", "mean_kl", "max_kl", "n_top1_changed", "mean_abs_delta_p")


def _slug(site: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", site).strip("-")[-40:] or "site"


def _name(run: str, suffix: str) -> str:
    return check_run_name(f"{run[:128 - len(suffix)]}{suffix}")


def ablation_change(runner, store, run: str, site: str, expert: int, limit: int = 16) -> dict:
    """{run, against, n_examples, kind, n_compared, mean_kl, max_kl, n_top1_changed[,
    mean_abs_delta_p]} for ablating `expert` at `site` on up to `limit` inputs of `run`."""
    examples = store.example_list(run, limit=int(limit))
    ids = [int(e) for e in examples.example][: int(limit)]
    items = [example_item(store, run, e) for e in ids]
    path = store.path
    plain = _name(run, f"-cards-plain-{len(items)}")
    ablated = _name(run, f"-ablate-{_slug(site)}-e{int(expert)}")
    origin = {"run": run, "examples": ids}
    with intervene(runner.module, ablate=[f"{site}:{int(expert)}"]) as edit:
        record(runner, items, path, ablated, overwrite=True,
               config={"intervention": edit.config, "ablation_of": origin})
    if not run_exists(path, plain):
        record(runner, items, path, plain, config={"ablation_of": origin})
    store.refresh()
    change = output_change(store, ablated, plain)
    out = {"run": ablated, "against": plain, "n_examples": len(items)}
    out.update({k: change[k] for k in KEYS if k in change})
    if "note" in change:
        out["note"] = change["note"]
    return out
