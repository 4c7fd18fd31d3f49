"""Experts page: a gallery per site with typical tokens, contexts, tag profile, load share."""

import pytest

from routeviz import metrics, open_store
from tests import app_support, ranking_store
from tests.app_support import open_page

app_store = app_support.app_store  # shared fixtures
skewed_store = ranking_store.skewed_store


def test_text_gallery_lists_every_expert_with_its_load(app_store):
    at = open_page(app_store, "experts", run="words")
    assert not at.error
    load = metrics.load(open_store(app_store), "words").experts
    site = at.selectbox(key="experts_site").value
    heads = [m.value for m in at.markdown if m.value.startswith("**Expert ")]
    assert len(heads) == 4
    for rec in load[load.site == site].itertuples():
        assert any(h.startswith(f"**Expert {rec.expert}** · load {rec.share:.1%}") for h in heads)
    contexts = "\n".join(t.value for t in at.text)
    assert "⟦" in contexts  # tokens shown in their context
    assert any("kind=" in c.value or "token_type=" in c.value for c in at.caption)


def test_site_and_tag_filters(app_store):
    at = open_page(app_store, "experts", run="words")
    options = at.selectbox(key="experts_site").options
    assert len(options) == 2
    at.selectbox(key="experts_site").set_value(options[1])
    at.selectbox(key="experts_tag").set_value("kind").run()
    assert "1.router" in at.caption[0].value
    assert not at.error
    tag_lines = [c.value for c in at.caption if c.value.startswith("Tags: ")]
    assert tag_lines and all("token_type=" not in line for line in tag_lines)


def test_image_gallery_shows_patch_crops(app_store):
    at = open_page(app_store, "experts", run="pictures")
    assert not at.error
    assert len(at.get("image")) == 4  # one strip of patch crops per expert


def blocks(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from blocks(child)


def token_table(at, expert: int):
    """The typical-token table in expert `expert`'s card (None when the card has none)."""
    for block in blocks(at.main):
        heads = [m.value for m in getattr(block, "markdown", []) if m.value.startswith("**Expert")]
        if len(heads) == 1 and heads[0].startswith(f"**Expert {expert}**"):
            return block.dataframe[0].value if len(block.dataframe) else None
    raise AssertionError(f"no card for expert {expert}")


def found_table(at):
    return next(d.value for d in at.dataframe if "P(expert | token)" in d.value.columns)


def test_count_aware_score_ranks_a_frequent_token_above_a_twice_seen_one(skewed_store):
    profile = metrics.expert_profiles(open_store(skewed_store), "skewed", min_count=1)
    tokens = profile.tokens[profile.tokens.expert == 0].set_index("text")
    assert tokens.lift["zyx"] > tokens.lift["the"]  # lift alone would put zyx first
    assert tokens.p_expert["the"] == pytest.approx(54 / 60)
    assert tokens.score["the"] > tokens.score["zyx"]
    at = open_page(skewed_store, "experts", run="skewed")
    assert not at.error
    assert at.slider(key="experts_min").value == 5
    assert list(token_table(at, 0).token) == ["the"]  # zyx (seen twice) is under the minimum count
    assert token_table(at, 2) is None  # w-tokens spread over experts 1-3: none 5+ times at 2
    assert any(c.value == "No token routed here 5+ times." for c in at.caption)
    at.slider(key="experts_min").set_value(1).run()
    table = token_table(at, 0)
    assert list(table.token) == ["the", "zyx"]
    assert list(table.seen) == [60, 2] and list(table["count"]) == [54, 2]
    assert "Wilson lower bound of P(expert | token)" in at.expander[0].markdown[0].value


def test_report_profiles_rank_like_the_page(skewed_store):
    from routeviz.report.collect import PROFILE_TOP

    profile = metrics.expert_profiles(open_store(skewed_store), "skewed", top=PROFILE_TOP,
                                      min_count=1)
    tokens = profile.tokens[profile.tokens.expert == 0]
    assert list(tokens.text) == ["the", "zyx"]
    assert list(tokens.score) == sorted(tokens.score, reverse=True)


def test_token_search_lists_the_experts_a_token_goes_to(skewed_store):
    at = open_page(skewed_store, "experts", run="skewed")
    at.text_input(key="experts_search").set_value("THE").run()
    found = found_table(at)
    assert list(found.token) == ["the", "the"] and list(found.expert) == [0, 1]
    assert list(found["count"]) == [54, 6]
    assert list(found["P(expert | token)"]) == [0.9, 0.1]
    at.text_input(key="experts_search").set_value("%_<b>").run()  # no wildcards, escaped
    assert any("No token contains “%\\_\\<b\\>”" in i.value for i in at.info)


def test_tag_value_filter_narrows_the_gallery(skewed_store):
    at = open_page(skewed_store, "experts", run="skewed")
    heads = [m.value for m in at.markdown if m.value.startswith("**Expert ")]
    assert len(heads) == 4
    at.selectbox(key="experts_value").set_value("token_type=article").run()
    assert not at.error
    heads = [m.value for m in at.markdown if m.value.startswith("**Expert ")]
    assert [h.split("**")[1] for h in heads] == ["Expert 0", "Expert 1"]  # 54 and 6 of 60
    caption = next(c.value for c in at.caption if c.value.startswith("Filtered to"))
    assert "0 (P = 0.90), 1 (P = 0.10)" in caption
