"""Expert cards on stores with known answers (tests/cards_store.py): a router that copies a
tag, one that routes at random, one that copies the token, and a series."""

import numpy as np
import pytest

from routeviz import open_store
from routeviz.analysis.card_tags import NO_LABEL, tag_tests
from routeviz.analysis.cards import expert_cards
from routeviz.errors import RoutevizError
from tests import cards_store
from tests.cards_store import SITE_A, SITE_B, VALUES, WORD_EXPERT

cards_store = cards_store.cards_store  # fixture


def by_key(cards):
    return {(c["site"], c["expert"]): c for c in cards}


def test_copying_router_is_labelled_with_exactly_the_copied_value(cards_store):
    cards = expert_cards(open_store(cards_store), "copy-tag").cards
    assert len(cards) == 8
    for card in cards:
        value = VALUES[card["expert"]] if card["site"] == SITE_A else \
            VALUES[(card["expert"] - 1) % 4]
        beyond = [(t["family"], t["value"]) for t in card["tags"] if t["beyond_chance"]]
        assert beyond == [("token_type", value)]
        assert card["label"].startswith(f"token_type={value} · ")
        assert card["label"].endswith("× chance") and "kind=" not in card["label"]
        tag = card["tags"][0]
        assert tag["share"] == 1.0 and tag["chance_hi"] < 0.4
        assert tag["lift"] == pytest.approx(1 / tag["chance"])
        assert card["strength"] == pytest.approx(tag["lift"])
        assert card["test"]["m"] == 4 * 6  # 4 experts × (kind: 2 + token_type: 4 values)
        assert card["test"]["threshold"] == pytest.approx(0.05 / 24)
        assert card["test"]["left_out"] == {"source": "provenance"}


def test_random_router_claims_nothing_beyond_chance(cards_store):
    cards = expert_cards(open_store(cards_store), "random").cards
    assert len(cards) == 8
    for card in cards:
        assert card["label"] == NO_LABEL and card["strength"] == 0.0
        assert card["n_tags_beyond"] == 0 and card["n_tags_tested"] == 6
        assert len(card["tags"]) == 3 and not any(t["beyond_chance"] for t in card["tags"])
        assert not any(p["beyond_chance"] for p in card["coactivation"]["feeds"]["experts"]
                       ) if card["coactivation"]["feeds"] else True


def test_token_copying_router_names_its_tokens_and_no_tag(cards_store):
    cards = expert_cards(open_store(cards_store), "copy-token").cards
    for card in cards:
        mine = {w for w, e in WORD_EXPERT.items() if e == card["expert"]}
        assert {t["text"] for t in card["tokens"]} == mine
        assert all(t["p_expert"] == 1.0 and t["n"] == t["seen"] for t in card["tokens"])
        assert {t["text"] for t in card["exclusive"]} == mine  # never shared
        assert card["label"] == NO_LABEL  # its tags are independent of its words


def test_feeds_and_load_against_chance(cards_store):
    cards = by_key(expert_cards(open_store(cards_store), "copy-tag").cards)
    for e in range(4):
        feeds = cards[(SITE_A, e)]["coactivation"]["feeds"]
        assert feeds["site"] == SITE_B
        top = feeds["experts"][0]
        assert top["expert"] == (e + 1) % 4 and top["p"] == 1.0 and top["beyond_chance"]
        assert top["chance"] < 0.3
        assert cards[(SITE_B, e)]["coactivation"]["feeds"] is None  # the last site
    loads = [cards[(SITE_A, e)]["load"] for e in range(4)]
    assert sum(x["share"] for x in loads) == pytest.approx(1.0)
    assert sorted(x["rank"] for x in loads) == [1, 2, 3, 4]
    busiest = max(range(4), key=lambda e: loads[e]["count"])
    assert loads[busiest]["rank"] == 1


def test_contexts_are_slices_of_the_original_text_with_the_token(cards_store):
    card = expert_cards(open_store(cards_store), "copy-token", site=SITE_A, expert=2,
                        contexts=4).cards[0]
    assert len(card["contexts"]) == 4
    for c in card["contexts"]:
        assert c["text"] in {"<b>bold</b>", "x"}  # expert 2's words, escaping left to views
        assert f"{c['left']}{c['text']}{c['right']}".count(c["text"]) >= 1


def test_grid_order_is_strongest_label_first_within_a_site(cards_store):
    cards = expert_cards(open_store(cards_store), "copy-tag").cards
    sites = [c["site"] for c in cards]
    assert sites == [SITE_A] * 4 + [SITE_B] * 4
    strengths = [c["strength"] for c in cards[:4]]
    assert strengths == sorted(strengths, reverse=True)


def test_series_card_says_when_its_label_formed_and_who_it_was(cards_store):
    cards = by_key(expert_cards(open_store(cards_store), "train-2", site=SITE_A).cards)
    for e in range(4):
        history = cards[(SITE_A, e)]["history"]
        assert history["step"] == 2 and history["formed_step"] == 1  # step 0 routed at random
        assert history["label_value"] == f"token_type={VALUES[(e - 1) % 4]}"
        assert history["before"][0] == {"step": 1, "expert": (e - 1) % 4, "similarity": 1.0}
    assert expert_cards(open_store(cards_store), "copy-tag").cards[0]["history"] is None


def test_minimum_count_and_family_choice_are_honoured(cards_store):
    store = open_store(cards_store)
    strict = tag_tests(store, "copy-tag", min_count=10**6)
    assert not strict.tests.beyond_chance.any()
    kind_only = tag_tests(store, "copy-tag", tags=["kind"])
    assert set(kind_only.tests.family) == {"kind"} and not kind_only.tests.beyond_chance.any()
    assert kind_only.m[SITE_A] == 4 * 2


def test_chance_band_is_the_permutation_band(cards_store):
    """The exact band equals what shuffling tag values across the site's units gives."""
    store = open_store(cards_store)
    tests = tag_tests(store, "random", site=SITE_A)
    row = tests.of(SITE_A, 0)
    row = row[row.value == "a"].iloc[0]
    routes = store.routes(run="random")
    routes = routes[routes.site == SITE_A].sort_values(["example", "token"])
    tags = store.engine.query("SELECT example, token, value FROM tags WHERE run = 'random' "
                              "AND name = 'token_type' ORDER BY example, token", {})
    is_a = (tags.value == "a").to_numpy()
    to_zero = (routes.choice == 0).to_numpy()
    rng = np.random.default_rng(0)
    shares = [is_a[rng.permutation(len(is_a))][to_zero].mean() for _ in range(4000)]
    assert np.quantile(shares, 0.025) == pytest.approx(row.chance_lo, abs=0.015)
    assert np.quantile(shares, 0.975) == pytest.approx(row.chance_hi, abs=0.015)
    assert np.mean(np.array(shares) >= row.share) == pytest.approx(row.p_value, abs=0.03)


def test_unknown_expert_or_site_says_what_exists(cards_store):
    store = open_store(cards_store)
    with pytest.raises(RoutevizError, match="experts: 0–3"):
        expert_cards(store, "copy-tag", site=SITE_A, expert=9)
    with pytest.raises(RoutevizError, match=SITE_A):
        expert_cards(store, "copy-tag", site="nope")


@pytest.fixture(scope="module")
def moe_store(tmp_path_factory):
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record

    path = tmp_path_factory.mktemp("cards-moe") / "store"
    runner = load_model("text-moe")
    texts = ["def add(x, y):\n    return x + y", "The cat sat on the mat."]
    record(runner, [Item(text=t, source=f"t{i}") for i, t in enumerate(texts)], path, "code")
    return path, runner


def test_ablating_its_busiest_expert_changes_the_output_and_an_idle_one_does_not(moe_store):
    path, runner = moe_store
    store = open_store(path)
    cards = expert_cards(store, "code", history=False).cards
    idle = [c for c in cards if c["load"]["count"] == 0]
    assert idle  # two short texts leave an expert of text-moe unchosen somewhere
    site = idle[0]["site"]
    busiest = min((c for c in cards if c["site"] == site), key=lambda c: c["load"]["rank"])
    card = expert_cards(store, "code", site=site, expert=busiest["expert"], runner=runner,
                        ablation_examples=2).cards[0]
    change = card["ablation"]
    assert change["n_examples"] == 2 and change["n_compared"] > 0
    assert change["mean_kl"] > 0 and change["run"].startswith("code-ablate-")
    assert open_store(path).config(change["run"])["intervention"]["ablate"]
    # an expert no token chose: ablating it leaves every output as it was
    same = expert_cards(store, "code", site=site, expert=idle[0]["expert"], runner=runner,
                        ablation_examples=2).cards[0]["ablation"]
    assert same["mean_kl"] == pytest.approx(0.0, abs=1e-6) and same["n_top1_changed"] == 0
    assert same["against"] == change["against"]  # the plain run is recorded once
