"""Metrics over a series (routeviz.metrics.series; identity in test_metrics_identity.py): a small MoE
trained with the probe callback, and synthetic series with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from routeviz.errors import RoutevizError
from routeviz.metrics.identity import identity
from routeviz.metrics.series import (
    balance,
    saturation,
    series_names,
    series_runs,
    series_summary,
    timeline,
)
from routeviz.store import open_store
from tests.series_store import three_step_store

EVERY, STEPS, FROZEN_AFTER = 2, 12, 6  # probe every 2 steps; no update after step 6


def train_with_callback(store_path):
    """A tiny Mixtral trained with Adam, RouteProbeCallback called as a Trainer calls it
    (on_step_end after each optimizer step, then on_train_end); every parameter frozen
    (requires_grad off, no more updates) after step FROZEN_AFTER. Returns the parameters
    at the freeze and at the end."""
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

    from routeviz.runs.probe import RouteProbeCallback
    from routeviz.testing import tiny_mixtral_config

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_mixtral_config(vocab_size=64, hidden_size=16,
                                                                 intermediate_size=16))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    probe_ids = torch.randint(2, 64, (3, 10))  # [b, s]: 3 examples x 10 tokens, fixed
    probe = [{"inputs": {"input_ids": probe_ids}, "examples": [0, 1, 2],
              "tokens": [[f"t{int(t)}" for t in row] for row in probe_ids],
              "tags": [{"parity": [str(int(t) % 2) for t in row]} for row in probe_ids]}]
    callback = RouteProbeCallback(probe, store_path, "tiny", every=EVERY)
    args, state, control = SimpleNamespace(output_dir=None), TrainerState(), TrainerControl()
    model.train()
    frozen = None
    for step in range(1, STEPS + 1):
        ids = torch.randint(2, 64, (8, 10))
        loss = model(input_ids=ids, labels=ids).loss
        if step <= FROZEN_AFTER:
            opt.zero_grad()
            loss.backward()
            opt.step()
        if step == FROZEN_AFTER:
            for p in model.parameters():
                p.requires_grad_(False)
            frozen = {k: v.clone() for k, v in model.state_dict().items()}
        state.global_step = step
        callback.on_step_end(args, state, control, model=model)
    callback.on_train_end(args, state, control, model=model)
    return frozen, model.state_dict()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("series") / "store"
    frozen, final = train_with_callback(path)
    return open_store(path), frozen, final


def test_saturation_is_exactly_one_once_frozen_and_below_before(trained):
    store, frozen, final = trained
    assert all(torch.equal(frozen[k], final[k]) for k in final)  # the freeze held
    sat = saturation(store, "tiny")
    steps = list(range(EVERY, STEPS + 1, EVERY))
    sites = ["*", "model.layers.0.mlp.gate", "model.layers.1.mlp.gate"]
    assert sat.step.tolist() == [s for s in steps for _ in sites]
    assert sat.site.tolist() == sites * len(steps)
    assert (sat[sat.site == "*"].n_units == 2 * 3 * 10).all()  # 2 sites x 30 probe tokens
    for row in sat.itertuples():
        if row.step >= FROZEN_AFTER:
            assert row.overlap == 1.0 and row.top1 == 1.0, row
    pooled = sat[(sat.site == "*") & (sat.step < FROZEN_AFTER)]
    assert len(pooled) == 2 and (pooled.overlap < 1.0).all() and (pooled.top1 < 1.0).all()
    assert (pooled.overlap >= pooled.top1 / 2).all()  # top-2: a kept top-1 is half the set


def test_store_holds_one_run_per_probe_step_grouped_by_series(trained):
    store = trained[0]
    runs = series_runs(store, "tiny")
    steps = list(range(EVERY, STEPS + 1, EVERY))
    assert runs.step.tolist() == steps
    assert runs.run.tolist() == [f"tiny-step{s:06d}" for s in steps]
    assert sorted(store.run_names()) == runs.run.tolist()
    assert series_names(store) == ["tiny"]
    for run, step in zip(runs.run, runs.step):
        config = store.config(run)
        assert (config["series"], config["step"], config["checkpoint"]) == ("tiny", step, None)
    with pytest.raises(RoutevizError, match="unknown series 'nope'.*tiny"):
        series_runs(store, "nope")


def test_frozen_steps_keep_every_expert_identity_and_metric(trained):
    store = trained[0]
    ids = identity(store, "tiny")
    late = ids[ids.from_step >= FROZEN_AFTER]
    assert len(late) == 3 * 2 * 4  # 3 transitions x 2 sites x 4 experts
    used = late[late.similarity > 0]
    assert (used.matched == used.expert).all() and np.allclose(used.similarity, 1.0)
    assert (late[late.similarity == 0].matched == -1).all() and not late.changed.any()
    frame = timeline(store, "tiny")
    assert set(frame.metric) == {"saturation_top1", "saturation_overlap", "load_cv", "maxvio",
                                 "focus", "cover", "entropy"}
    for metric in ("load_cv", "maxvio", "focus", "cover", "entropy"):
        after = frame[(frame.metric == metric) & (frame.step >= FROZEN_AFTER)]
        # nothing moves (to float precision: DuckDB's parallel sums may add in any order)
        assert after.value.round(9).groupby(after.site).nunique().eq(1).all(), metric


def test_synthetic_series_known_answers(tmp_path):
    store = three_step_store(tmp_path / "s")
    sat = saturation(store, "s").set_index(["step", "site"])
    for step in (10, 20):
        assert sat.loc[(step, "*"), "overlap"] == 0.5 and sat.loc[(step, "*"), "top1"] == 0.0
    assert sat.loc[(30, "g1"), "overlap"] == 1.0 and sat.loc[(30, "g1"), "n_units"] == 6
    bal = balance(store, "s").set_index(["step", "site"])
    # the same expert counts at every step: [3, 4, 3, 2]
    counts = np.bincount([e for t in range(6) for e in (t % 4, (t + 1) % 4)], minlength=4)
    assert bal.loc[(10, "g0"), "cv"] == pytest.approx(counts.std() / counts.mean())
    assert bal.loc[(10, "g0"), "maxvio"] == pytest.approx((counts.max() - counts.mean())
                                                          / counts.mean())
    assert bal.loc[(10, "*"), "maxvio"] == pytest.approx(bal.loc[(10, "g0"), "maxvio"])
    ids = identity(store, "s")
    first, second = ids[ids.from_step == 10], ids[ids.from_step == 20]
    assert (first.matched == first.expert).all()  # ranks swapped, same sets: same experts
    assert (second.matched == (second.expert + 1) % 4).all() and second.changed.all()
    assert np.allclose(second.similarity, 1.0)
    entropies = timeline(store, "s").query("metric == 'entropy'")
    assert len(entropies) == 3 * 3 and np.allclose(entropies.value, np.log(2))  # w = 1/2, 1/2
    out = series_summary(store, "s")
    assert out["runs"] == ["s-step000010", "s-step000020", "s-step000030"]
    assert out["final_step"] == 30 and [s["step"] for s in out["steps"]] == [10, 20, 30]
    assert out["steps"][0]["saturation"][0] == {"site": "*", "top1": 0.0, "overlap": 0.5,
                                                "n_units": 12}
    assert {r["site"] for r in out["steps"][0]["focus_cover"]} == {"*", "g0", "g1"}
    assert len(out["identity"]) == 2 * 2 * 4


# -- the batched timeline against its per-step computation ------------------------------
SERIES_STORES = Path(__file__).resolve().parents[1] / "sample_models" / "data" / "series"


def per_step_timeline(store, series, chance):
    """The timeline as it was computed before batching: `load`, `_focus_rows` (focus_cover
    and focus_cover_baseline) and `_entropy_rows` one step (one run) at a time."""
    from routeviz.metrics import series as series_module
    from routeviz.metrics.load import load

    runs = series_module.series_runs(store, series)
    rows = []
    for run, step in zip(runs.run, runs.step):
        sites = load(store, run).sites
        rows += [{"step": step, "run": run, "site": s, "metric": m, "value": v}
                 for s, cv, mv in zip(sites.site, sites.cv, sites.max_over_mean - 1.0)
                 for m, v in (("load_cv", cv), ("maxvio", mv))]
        rows += series_module._focus_rows(store, run, step, None, chance)
        rows += series_module._entropy_rows(store, run, step)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", ["text-moe", "dae-syn"])
def test_batched_timeline_equals_the_per_step_computation(name):
    """The Timeline's series metrics, every step in a few queries, give the numbers that
    `load`, `focus_cover`, its 20-shuffle band and `entropy` give step by step (the
    entropies up to float rounding: DuckDB sums a mean in another order)."""
    store = open_store(SERIES_STORES / name)
    series = min(series_names(store))
    batched = timeline(store, series, chance=20)
    old = per_step_timeline(store, series, chance=20)
    key = ["run", "site", "metric"]
    merged = batched.merge(old, on=key, how="right", suffixes=("", "_old"))
    assert len(merged) == len(old) and merged.value.notna().sum() == old.value.notna().sum()
    shown = {"focus", "cover", "focus_lo", "cover_hi", "load_cv", "maxvio"}
    assert shown | ({"entropy"} if name == "text-moe" else set()) <= set(old.metric)
    exact = merged[merged.metric != "entropy"]
    assert (exact.value.to_numpy() == exact.value_old.to_numpy()).all(), exact[
        exact.value != exact.value_old]
    ent = merged[merged.metric == "entropy"]
    np.testing.assert_allclose(ent.value, ent.value_old, rtol=1e-12, atol=0)
