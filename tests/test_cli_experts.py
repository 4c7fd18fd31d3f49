"""`routeviz experts`: the cards as JSON (the contract's keys) and as a readable table."""

import json

from routeviz.cli import main
from tests import cards_store
from tests.cards_store import SITE_A, VALUES

cards_store = cards_store.cards_store  # fixture

CARD_KEYS = {"site", "expert", "label", "tags", "tokens", "contexts", "load", "coactivation",
             "exclusive", "history", "ablation", "test", "strength", "layer"}
TAG_KEYS = {"family", "value", "share", "lift", "chance_lo", "chance_hi", "beyond_chance"}


def run_json(capsys, *argv):
    assert main(["experts", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_cards_carry_the_contract_keys_and_the_copied_label(cards_store, capsys):
    out = run_json(capsys, "--store", str(cards_store), "--run", "copy-tag")
    assert len(out["cards"]) == 8
    for card in out["cards"]:
        assert CARD_KEYS <= set(card)
        assert all(TAG_KEYS <= set(t) for t in card["tags"])
        assert all({"text", "n", "score"} <= set(t) for t in card["tokens"])
        assert card["ablation"] is None  # off by default
    assert out["test"]["correction"] == "bonferroni"
    assert out["test"]["left_out"] == {"source": "provenance"}
    one = run_json(capsys, "--store", str(cards_store), "--run", "copy-tag", "--site", SITE_A,
                   "--expert", "2")
    assert [c["expert"] for c in one["cards"]] == [2]
    assert one["cards"][0]["label"].startswith(f"token_type={VALUES[2]} · ")


def test_random_router_json_claims_nothing(cards_store, capsys):
    out = run_json(capsys, "--store", str(cards_store), "--run", "random")
    assert {c["label"] for c in out["cards"]} == {"no tag beyond chance"}


def test_table_names_labels_tokens_and_the_test(cards_store, capsys):
    assert main(["experts", "--store", str(cards_store), "--run", "copy-token",
                 "--site", SITE_A]) == 0
    text = capsys.readouterr().out
    assert text.count("no tag beyond chance") == 4
    assert "'<b>bold</b>'×" in text  # token text as itself, quoted
    assert "Bonferroni" in text and "left out: source" in text


def test_bad_input_is_one_line(cards_store, capsys):
    assert main(["experts", "--store", str(cards_store), "--run", "copy-tag",
                 "--expert", "1"]) == 2
    assert "--expert needs --site" in capsys.readouterr().err
    assert main(["experts", "--store", str(cards_store), "--run", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("routeviz: error:") and "copy-tag" in err and len(err.splitlines()) == 1


def test_ablation_is_off_by_default_and_measured_when_asked(tmp_path, capsys):
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record

    store = tmp_path / "store"
    record(load_model("text-moe"), [Item(text="def f(x):\n    return x", source="t")],
           store, "code")
    site = "blocks.0.mlp.router"
    plain = run_json(capsys, "--store", str(store), "--run", "code", "--site", site,
                     "--expert", "0")
    assert plain["cards"][0]["ablation"] is None
    from routeviz import open_store

    assert open_store(store).run_names() == ["code"]  # nothing recorded without --ablation
    out = run_json(capsys, "--store", str(store), "--run", "code", "--site", site,
                   "--expert", "0", "--ablation", "--ablation-examples", "1")
    change = out["cards"][0]["ablation"]
    assert change["n_examples"] == 1 and change["n_compared"] > 0 and change["mean_kl"] >= 0
    assert change["run"] in open_store(store).run_names()
