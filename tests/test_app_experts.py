"""Experts page: a grid of expert cards per site (routeviz.analysis.cards), strongest label
first, each linking to its full view; token search and tag-value filter. A text run's card
is one HTML block (read back by `Card`); an image run's, a container of elements."""

import html
import re

import pandas as pd
import pytest

from routeviz import metrics, open_store
from tests import app_support, cards_store, ranking_store
from tests.app_support import open_page
from tests.cards_store import SITE_A, VALUES

app_store = app_support.app_store  # shared fixtures
skewed_store = ranking_store.skewed_store
cards_store = cards_store.cards_store


def blocks(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from blocks(child)


class Card:
    """A text run's grid card (experts_views.grid_card_html) read back: head, label and
    contexts as shown (markup stripped, entities decoded), the token table, the link."""

    def __init__(self, body: str):
        self.body = body
        head, label = re.findall(r"<p>(.*?)</p>", body)[:2]
        self.head, self.label = _text(head), _text(label)
        self.label_html = label
        rows = [[_text(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)]
                for row in re.findall(r"<tr>(.*?)</tr>", body)]
        self.table = pd.DataFrame(rows[1:], columns=rows[0]) if rows else None
        pre = re.search(r"<pre>(.*?)</pre>", body, flags=re.DOTALL)
        self.contexts = html.unescape(pre.group(1)) if pre else ""
        self.link = html.unescape(re.search(r"href='([^']*)'", body).group(1))


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def card_blocks(at):
    """{expert: its card} in page order: a Card for a text run, else the bordered container
    of the card's elements."""
    out = {}
    for body in (h.proto.body for h in at.get("html")):
        if "class='rv-card'" in body:
            card = Card(body)
            out[int(card.head.split()[1])] = card
    if out:
        return out
    for block in blocks(at.main):
        heads = [m.value for m in getattr(block, "markdown", []) if m.value.startswith("**Expert")]
        if len(heads) == 1 and "Open card" in " ".join(m.value for m in block.markdown):
            out[int(heads[0].split()[1].strip("*"))] = block
    return out


def token_table(at, expert: int):
    return card_blocks(at)[expert].table


def open_cards(store, run, site=None, expert=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(app_support.APP, default_timeout=60)
    at.session_state["store_path"] = str(store)
    at.query_params.update({"page": "experts", "run": run})
    if site is not None:
        at.query_params["site"] = site
    if expert is not None:
        at.query_params["expert"] = str(expert)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_text_gallery_lists_every_expert_with_its_load(app_store):
    at = open_page(app_store, "experts", run="words")
    assert not at.error
    load = metrics.load(open_store(app_store), "words").experts
    site = at.selectbox(key="experts_site").value
    heads = [card.head for card in card_blocks(at).values()]
    assert len(heads) == 4
    for rec in load[load.site == site].itertuples():
        assert any(h.startswith(f"Expert {rec.expert} · load {rec.share:.1%}") for h in heads)
    contexts = "\n".join(card.contexts for card in card_blocks(at).values())
    assert "⟦" in contexts  # tokens shown in their context


def test_grid_is_sorted_by_label_strength_and_names_the_copied_value(cards_store):
    at = open_cards(cards_store, "copy-tag")
    assert not at.error
    cards = card_blocks(at)
    assert len(cards) == 4
    from routeviz.analysis.cards import expert_cards

    expected = [c["expert"] for c in expert_cards(open_store(cards_store), "copy-tag",
                                                  site=SITE_A).cards]
    assert list(cards) == expected  # strongest beyond chance first
    for expert, card in cards.items():
        assert card.label_html.startswith(f"<b>token_type={VALUES[expert]}</b> ")
        assert card.label.count("× chance") == 1  # only the copied value, no padding


def test_random_router_cards_list_no_tag(cards_store):
    at = open_cards(cards_store, "random")
    assert len(card_blocks(at)) == 4
    for card in card_blocks(at).values():
        assert card.label == "no tag beyond chance"
        assert "=" not in card.label  # no padded tag list


def test_grid_token_tables_fit_a_card(cards_store):
    """Issue 24: 3-row tables cut off the score column; the grid shows three narrow columns
    that fit a card. Issue 25: as a static table (a grid of interactive ones was most of the
    page's drawing in the browser), sized to its content, every row shown."""
    at = open_cards(cards_store, "copy-token")
    assert len(card_blocks(at)) == 4
    assert not at.dataframe  # no interactive grid in a card
    for card in card_blocks(at).values():
        table = card.table
        assert list(table.columns) == ["token", "here/seen", "score"]
        assert len(table) == 2  # the two words it copies
        assert all(len(s.split(".")[1]) == 2 for s in table["score"])  # as the grid showed
        assert all("/" in s for s in table["here/seen"])


def test_card_link_opens_its_full_view(cards_store):
    at = open_cards(cards_store, "copy-tag")
    card = card_blocks(at)[2]
    assert card.link == f"?page=experts&run=copy-tag&site={SITE_A}&expert=2"
    assert "target='_blank'" in card.body and "Open card →</a>" in card.body
    full = open_cards(cards_store, "copy-tag", site=SITE_A, expert=2)
    assert not full.error
    assert full.subheader[0].value == "Expert 2 at 0.mlp.gate"
    table = next(d.value for d in full.dataframe if "tag value" in d.value.columns)
    assert list(table["tag value"]) == ["token_type=c"]
    assert table["95% band"].iloc[0].count("–") == 1 and list(table["share"]) == ["100%"]
    assert any("Feeds" in m.value for m in full.markdown)
    full.button(key="experts_back").click().run()
    assert len(card_blocks(full)) == 4 and "expert" not in full.query_params


def test_tag_values_say_what_they_count(cards_store):
    """Issue 24: "P 0.78" was unexplained; the full view names share, chance, band and p."""
    full = open_cards(cards_store, "copy-tag", site=SITE_A, expert=0)
    table = next(d.value for d in full.dataframe if "tag value" in d.value.columns)
    assert list(table.columns) == ["tag value", "units here", "share", "chance", "95% band",
                                   "× chance", "p"]
    note = full.expander[0].markdown[0].value
    assert "share" in note and "Bonferroni" in note and "shuffled" in note
    assert not any("(P " in c.value for c in full.caption)


def test_token_text_is_escaped_inside_cards(cards_store):
    grid = card_blocks(open_cards(cards_store, "copy-token"))
    card = next(c for c in grid.values() if "<b>bold</b>" in set(c.table.token))  # as text
    assert "<b>bold</b>" not in card.body and "&lt;b&gt;bold&lt;/b&gt;" in card.body
    full = open_cards(cards_store, "copy-token", site=SITE_A, expert=2)
    never = next(c.value for c in full.caption if c.value.startswith("Never shared"))
    assert "\\<b\\>bold\\</b\\>" in never  # markdown shows the tags as text
    tokens = next(d.value for d in full.dataframe if "token" in d.value.columns)
    assert "<b>bold</b>" in set(tokens.token)


def test_per_example_image_experts_show_their_images(tmp_path):
    """Issue 24: dae-syn (per-example) experts showed no images."""
    from tests.report_store import HOSTILE_TAG, dae_syn_run

    dae_syn_run(tmp_path / "store", n_examples=64)
    at = open_cards(tmp_path / "store", "dae", site="routers.0")
    assert not at.error
    cards = card_blocks(at)
    assert len(cards) == 8
    assert all(len(block.get("image")) == 1 for block in cards.values())  # one strip each
    labels = " ".join(block.markdown[1].value for block in cards.values())
    assert "shape=circle" in labels and HOSTILE_TAG not in labels  # hostile value escaped


def test_count_aware_score_ranks_a_frequent_token_above_a_twice_seen_one(skewed_store):
    profile = metrics.expert_profiles(open_store(skewed_store), "skewed", min_count=1)
    tokens = profile.tokens[profile.tokens.expert == 0].set_index("text")
    assert tokens.lift["zyx"] > tokens.lift["the"]  # lift alone would put zyx first
    assert tokens.score["the"] > tokens.score["zyx"]
    at = open_page(skewed_store, "experts", run="skewed")
    assert not at.error
    assert at.slider(key="experts_min").value == 5
    assert list(token_table(at, 0).token) == ["the"]  # zyx (seen twice) is under the minimum
    assert token_table(at, 2) is None  # w-tokens spread over experts 1-3: none 5+ times at 2
    at.slider(key="experts_min").set_value(1).run()
    table = token_table(at, 0)
    assert list(table.token) == ["the", "zyx"]
    assert list(table["here/seen"]) == ["54/60", "2/2"]
    assert "Wilson lower bound of P(expert | token)" in at.expander[0].markdown[0].value


def test_token_search_lists_the_experts_a_token_goes_to(skewed_store):
    at = open_page(skewed_store, "experts", run="skewed")
    at.text_input(key="experts_search").set_value("THE").run()
    found = next(d.value for d in at.dataframe if "P(expert | token)" in d.value.columns)
    assert list(found.token) == ["the", "the"] and list(found.expert) == [0, 1]
    assert list(found["count"]) == [54, 6]
    at.text_input(key="experts_search").set_value("%_<b>").run()  # no wildcards, escaped
    assert any("No token contains “%\\_\\<b\\>”" in i.value for i in at.info)


def test_tag_value_filter_narrows_the_gallery(skewed_store):
    at = open_page(skewed_store, "experts", run="skewed")
    at.selectbox(key="experts_value").set_value("token_type=article").run()
    assert not at.error
    assert sorted(card_blocks(at)) == [0, 1]  # 54 and 6 of 60
    caption = next(c.value for c in at.caption if c.value.startswith("Filtered to"))
    assert "0 (P(expert | value) = 0.90), 1 (P(expert | value) = 0.10)" in caption


@pytest.mark.parametrize("run", ["pictures"])
def test_image_gallery_shows_patch_crops(app_store, run):
    at = open_page(app_store, "experts", run=run)
    assert not at.error
    assert len(at.get("image")) == 4  # one strip of patch crops per expert


def test_one_click_measures_the_ablation_of_a_card(tmp_path):
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record

    record(load_model("text-moe"), [Item(text="def f(x):\n    return x + 1", source="t")],
           tmp_path / "store", "code")
    full = open_cards(tmp_path / "store", "code", site="blocks.0.mlp.router", expert=0)
    assert not any(m.value.startswith("Ablated on") for m in full.markdown)
    full.button(key="experts_ablate").click().run(timeout=180)
    assert not full.error and not full.exception
    done = next(m.value for m in full.markdown if m.value.startswith("Ablated on"))
    assert done.startswith("Ablated on 1 inputs: mean KL ")
    assert "code\\-ablate\\-blocks\\-0\\-mlp\\-router\\-e0" in done
    assert "code-ablate-blocks-0-mlp-router-e0" in open_store(tmp_path / "store").run_names()


def test_full_view_of_a_series_step_says_when_its_label_formed(cards_store):
    full = open_cards(cards_store, "train-2", site=SITE_A, expert=1)
    past = next(c.value for c in full.caption if c.value.startswith("Series train"))
    assert "token\\_type=a first appears at step 1" in past
    assert "step 1: expert 0 (similarity 1.00)" in past


def test_a_run_without_tags_gets_cards_that_claim_nothing(tmp_path):
    from tests.metrics_store import A, expert_routes, write_run

    write_run(tmp_path / "store", "bare", expert_routes("a", 0, A),
              tokens={0: [f"t{i}" for i in range(10)]}, config={"n_experts": 4})
    at = open_cards(tmp_path / "store", "bare")
    assert not at.error
    assert [card.label for card in card_blocks(at).values()] == ["no tag beyond chance"] * 4
    full = open_cards(tmp_path / "store", "bare", site="a", expert=0)
    assert not full.error and not full.exception
    assert any(c.value.startswith("No tag values to test") for c in full.caption)
