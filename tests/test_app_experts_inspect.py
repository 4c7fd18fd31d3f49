"""Inspect's token hover names the expert card label of each expert the token passed."""

import html
import json

from routeviz import open_store
from routeviz.analysis.cards import card_labels
from tests import cards_store
from tests.app_support import open_page
from tests.cards_store import SITE_A, SITE_B, VALUES, corpus

cards_store = cards_store.cards_store  # fixture


def chip_titles(at) -> list[str]:
    page = "".join(h.proto.body for h in at.get("html"))
    chips = page.split('class="rv-chip" title="')[1:]
    return [html.unescape(c.split('"', 1)[0]) for c in chips]


def test_hover_names_the_card_label_of_each_expert_passed(cards_store):
    labels = card_labels(open_store(cards_store), "copy-tag")
    at = open_page(cards_store, "inspect", run="copy-tag")
    assert not at.exception
    titles = chip_titles(at)
    words, types = corpus()
    example = int(at.session_state["inspect_example"]) if "inspect_example" in at.session_state \
        else 0
    assert len(titles) == len(words[example])
    for token, title in enumerate(titles):
        value = types[example, token]
        a, b = value, (value + 1) % 4
        assert "expert cards:" in title
        assert f"0.mlp.gate e{a}: {labels[(SITE_A, a)]}" in title
        assert f"1.mlp.gate e{b}: {labels[(SITE_B, b)]}" in title
        assert labels[(SITE_A, a)].startswith(f"token_type={VALUES[value]} · ")
    assert "<b>bold</b>" in words[example]
    page = "".join(h.proto.body for h in at.get("html"))
    assert "<b>bold</b>" not in page  # token text escaped in chips and hover, never markup
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_random_run_hover_says_no_tag(cards_store):
    at = open_page(cards_store, "inspect", run="random")
    titles = chip_titles(at)
    assert titles and all("e" in t and "no tag beyond chance" in t for t in titles)
    assert not any("× chance" in t for t in titles)


def test_patch_hover_names_the_card_label_too(tmp_path):
    """Image runs: each patch's hover lists its experts' card labels (left-half patches go
    to experts 0/1, so those cards say half=left)."""
    from tests.report_store import image_run

    image_run(tmp_path / "store")
    labels = card_labels(open_store(tmp_path / "store"), "image")
    assert labels[("blocks.1.moe.router", 0)].startswith("half=left · ")
    at = open_page(tmp_path / "store", "inspect", run="image")
    assert not at.exception
    overlay = next(c for c in at.get("plotly_chart") if "Top-1 expert per patch" in c.proto.spec)
    hovers = json.dumps(json.loads(overlay.proto.spec)["data"], ensure_ascii=False)
    assert hovers.count("expert cards:") >= 16 // 2  # every patch that reached the site
    assert "1.moe.router e0: half=left · " in hovers or "1.moe.router e1: half=left · " in hovers
