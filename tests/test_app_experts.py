"""Experts page: a gallery per site with typical tokens, contexts, tag profile, load share."""

from routeviz import metrics, open_store
from tests import app_support
from tests.app_support import open_page

app_store = app_support.app_store  # shared fixture


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
