"""routeviz.intervene and trace --ablate/--force/--top-k/--disable: on tiny random Mixtral and
text-moe an ablated expert never appears at its site (and does without the ablation), a
forced expert is rank 0 for every token at its site, --top-k 1 leaves one expert row per
token and site, the outputs change where routing did, and `routeviz diff` reports it."""

import json

import pytest
import torch

import routeviz
from routeviz.cli import main
from routeviz.errors import RoutevizError

MIXTRAL_TEXTS = ["the model is a token of the expert gate", "def x ( ) : return y + 1"]
TEXT_MOE_TEXTS = ["def add(x, y):\n    return x + y  # a small function",
                  "The quick brown fox jumps over the lazy dog."]
LAYER0 = "model.layers.0.mlp.gate"


def trace_cli(model, store, run, texts, *options):
    code = main(["trace", "--model", str(model), "--text", *texts, "--store", str(store),
                 "--run", run, *options])
    assert code == 0
    return routeviz.open_store(store)


def experts(store, run, site=None):
    sql = "SELECT * FROM routes WHERE run = ? AND kind = 'expert'"
    df = store.query_df(sql, [run])
    return df if site is None else df[df.site == site]


def common_expert(store, run, site):
    """The expert the plain run chooses most often at `site` (any rank)."""
    return int(experts(store, run, site).choice.value_counts().idxmax())


def diff_json(store_dir, run, against, capsys):
    capsys.readouterr()
    assert main(["diff", "--store", str(store_dir), "--run", run, "--against", against,
                 "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def mixtral_plain(mixtral_dir, store_dir):
    return trace_cli(mixtral_dir, store_dir, "plain", MIXTRAL_TEXTS)


def test_mixtral_ablate_force_top_k_and_diff(mixtral_dir, store_dir, mixtral_plain, capsys):
    ablated = common_expert(mixtral_plain, "plain", LAYER0)
    assert ablated in set(experts(mixtral_plain, "plain", LAYER0).choice)
    store = trace_cli(mixtral_dir, store_dir, "ablate", MIXTRAL_TEXTS,
                      "--ablate", f"{LAYER0}:{ablated}")
    at_site = experts(store, "ablate", LAYER0)
    assert len(at_site) == len(experts(store, "plain", LAYER0))  # still k experts per token
    assert ablated not in set(at_site.choice)
    # Mixtral re-chooses among the rest: softmax, top-2, renormalised (weights sum to 1)
    sums = at_site.groupby(["example", "token"]).weight.sum()
    assert sums.between(1 - 1e-5, 1 + 1e-5).all()

    forced = (ablated + 1) % 4
    store = trace_cli(mixtral_dir, store_dir, "force", MIXTRAL_TEXTS,
                      "--force", f"*.1.mlp.gate:{forced}")
    top = experts(store, "force", "model.layers.1.mlp.gate").query("rank == 0")
    assert len(top) == len(experts(store, "plain", "model.layers.1.mlp.gate").query("rank == 0"))
    assert set(top.choice) == {forced}

    store = trace_cli(mixtral_dir, store_dir, "top1", MIXTRAL_TEXTS, "--top-k", "1")
    rows = experts(store, "top1").groupby(["site", "example", "token"]).size()
    assert (rows == 1).all() and len(rows) == len(
        experts(store, "plain").groupby(["site", "example", "token"]).size())

    config = store.facts("ablate").config["intervention"]
    assert config["ablate"] == [f"{LAYER0}:{ablated}"]
    assert config["sites"] == {LAYER0: {"ablate": [ablated]}}
    assert "intervention" not in store.facts("plain").config

    report = diff_json(store_dir, "ablate", "plain", capsys)
    site0 = next(s for s in report["sites"] if s["site"] == LAYER0)
    assert site0["jaccard"] < 1
    assert report["intervened_sites"] == [LAYER0]
    assert LAYER0 in report["changed_sites"]
    out = report["outputs"]
    assert out["kind"] == "next_token"
    assert out["n_compared"] == int(store.query_df(
        "SELECT count(*) AS n FROM tokens WHERE run = 'plain'").n[0])
    assert out["max_kl"] > 1e-4  # the output moved where the routing did
    same = diff_json(store_dir, "plain", "plain", capsys)["outputs"]
    assert same["max_kl"] == 0 and same["n_top1_changed"] == 0


def test_text_moe_cli(store_dir, capsys):
    store = trace_cli("text-moe", store_dir, "plain", TEXT_MOE_TEXTS)
    site = "blocks.0.mlp.router"
    ablated = common_expert(store, "plain", site)
    store = trace_cli("text-moe", store_dir, "ablate", TEXT_MOE_TEXTS,
                      "--ablate", f"{site}:{ablated}", "--ablate", f"{site}:{(ablated + 1) % 8}")
    assert not {ablated, (ablated + 1) % 8} & set(experts(store, "ablate", site).choice)
    store = trace_cli("text-moe", store_dir, "force", TEXT_MOE_TEXTS, "--force", "*.2.mlp.*:5")
    top = experts(store, "force", "blocks.2.mlp.router").query("rank == 0")
    assert set(top.choice) == {5} and len(top) > 0
    store = trace_cli("text-moe", store_dir, "top1", TEXT_MOE_TEXTS, "--top-k", "1")
    assert (experts(store, "top1").groupby(["site", "example", "token"]).size() == 1).all()
    report = diff_json(store_dir, "ablate", "plain", capsys)
    assert report["outputs"]["max_kl"] > 1e-4
    assert report["intervened_sites"] == [site]
    # an edit in block 0 moves the routing of later blocks, which were not edited
    assert report["downstream_changed_sites"]
    assert all(s != site for s in report["downstream_changed_sites"])


def test_text_moe_disable_keep_and_exit(store_dir):
    store = trace_cli("text-moe", store_dir, "plain", TEXT_MOE_TEXTS)
    store = trace_cli("text-moe", store_dir, "dense", TEXT_MOE_TEXTS, "--disable", "keep,exit")
    routes = store.query_df("SELECT run, kind, site, choice FROM routes WHERE kind IN "
                            "('keep', 'exit')", [])
    plain, dense = routes[routes.run == "plain"], routes[routes.run == "dense"]
    assert 0 in set(plain[plain.kind == "keep"].choice)  # MoD skips tokens ...
    assert set(dense[dense.kind == "keep"].choice) == {1}  # ... and with keep off, none
    assert set(dense[dense.kind == "exit"].choice) == {3}  # every token runs to the last layer
    assert store.facts("dense").config["intervention"]["disable"] == ["keep", "exit"]


def test_glyph_vit_disable_merge_and_keep(store_dir, tmp_path):
    from routeviz.interventions.intervene import intervene
    from routeviz.plugins import load_dataset
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record

    runner = load_model("glyph-vit")
    items = load_dataset("glyphs", limit=2)
    record(runner, items, store_dir, "plain")
    with intervene(runner.module, disable=["keep", "merge"], force=["*:0"]):
        record(runner, items, store_dir, "dense")
    store = routeviz.open_store(store_dir)
    kinds = store.query_df("SELECT run, kind, min(choice) AS low, count(*) AS n FROM routes "
                           "GROUP BY run, kind", []).set_index(["run", "kind"])
    assert kinds.loc[("plain", "merge"), "n"] > 0 and kinds.loc[("plain", "keep"), "low"] == 0
    assert ("dense", "merge") not in kinds.index and kinds.loc[("dense", "keep"), "low"] == 1
    top = experts(store, "dense").query("rank == 0")
    assert set(top.choice) == {0}
    change = routeviz.metrics.diff(store, "dense", "plain")["outputs"]
    assert change["kind"] == "class" and change["n_compared"] == 2
    assert {"class_against", "p_against", "p_run", "delta_p"} <= set(change["examples"][0])


def test_hooks_gone_after_block_and_after_error(mixtral_dir):
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model

    runner = load_model(str(mixtral_dir))
    model = runner.module
    inputs = runner.encode([Item(text=MIXTRAL_TEXTS[0])]).inputs
    def counts():
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

    before = counts()
    with torch.no_grad():
        plain = model(**inputs).logits
        with routeviz.intervene(model, ablate=["*.mlp.gate:0", "*.mlp.gate:1"]):
            assert counts() == before + 2
            edited = model(**inputs).logits
        assert counts() == before
        after = model(**inputs).logits
        with pytest.raises(ValueError, match="inside"), routeviz.intervene(model, force=["*:2"]):
            raise ValueError("inside")
        assert counts() == before
    assert not torch.equal(plain, edited)
    assert torch.equal(plain, after)  # nothing left behind


def test_intervene_inside_a_trace_is_recorded(mixtral_dir, store_dir):
    """The edit hook goes ahead of the tracer's, so a trace that began first records it."""
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model

    runner = load_model(str(mixtral_dir))
    inputs = runner.encode([Item(text=MIXTRAL_TEXTS[1])]).inputs
    with torch.no_grad(), routeviz.trace(runner.module, store_dir, "inside"), \
            routeviz.intervene(runner.module, force=[f"{LAYER0}:3"]):
        runner.module(**inputs)
    top = experts(routeviz.open_store(store_dir), "inside", LAYER0).query("rank == 0")
    assert set(top.choice) == {3} and len(top) == int(inputs["attention_mask"].sum())


@pytest.mark.parametrize("option, message", [
    (["--ablate", "nothing.*:1"], "matches no routing site"),
    (["--ablate", "model.layers.0.mlp.gate"], "write SITE:EXPERT"),
    (["--ablate", f"{LAYER0}:9"], "has 4 experts"),
    (["--force", f"{LAYER0}:1", "--ablate", f"{LAYER0}:1"], "both ablated and forced"),
    (["--top-k", "5"], "--top-k 5"),
    (["--top-k", "0"], "must be 1 or more"),
    (["--disable", "merge"], "--disable merge"),
])
def test_bad_intervention_is_one_line_error(option, message, mixtral_dir, store_dir, capsys):
    code = main(["trace", "--model", str(mixtral_dir), "--text", "the a", "--store",
                 str(store_dir), "--run", "bad", *option])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_intervention_with_series_is_refused(mixtral_dir, store_dir, capsys):
    code = main(["trace", "--model", str(mixtral_dir), str(mixtral_dir), "--series", "s",
                 "--text", "the a", "--store", str(store_dir), "--top-k", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not taken with --series" in err and len(err.splitlines()) == 1


def test_family_not_softmax_top_k_is_refused():
    from tests.families import BY_NAME

    model = BY_NAME["deepseek_v3"].build()
    ids = torch.randint(1, 60, (1, 6))
    with routeviz.intervene(model, ablate=["*:1"]), pytest.raises(RoutevizError,
                                                                   match="softmax then top-k"):
        model(input_ids=ids)


def test_outputs_recorded_per_token_within_the_budget(store_dir, monkeypatch):
    """The outputs table: one row per token, log-probabilities over the vocabulary that
    sum to 1; once the run's budget is spent, later batches are left out and a note says so."""
    import numpy as np

    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record

    runner = load_model("text-moe")
    items = [Item(text=t) for t in TEXT_MOE_TEXTS]
    n_first = len(runner.encode(items[:1]).tokens[0])
    monkeypatch.setattr("routeviz.runs.record.OUTPUT_BUDGET", n_first * 2048)
    result = record(runner, items, store_dir, "small", batch_size=1)
    assert any("outputs recorded for the first 1 example" in n for n in result.notes)
    rows = routeviz.open_store(store_dir).query_df(
        "SELECT example, token, logprobs FROM outputs WHERE run = 'small' ORDER BY token", [])
    assert set(rows.example) == {0} and list(rows.token) == list(range(n_first))
    probs = np.exp(np.stack(rows.logprobs).astype(np.float64)).sum(axis=1)
    assert np.allclose(probs, 1.0, atol=2e-2) and len(rows.logprobs[0]) == 2048
