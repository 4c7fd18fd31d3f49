"""Embeddings page: a capped 2-D map coloured by expert, tag or exit layer."""

from routeviz import open_store
from tests.app_support import app_store, open_page, plotly_specs  # noqa: F401


def test_map_is_capped_and_says_so(app_store):
    at = open_page(app_store, "embeddings", run="words")
    assert not at.get("plotly_chart")  # nothing drawn until asked
    at.radio(key="emb_method").set_value("pca")
    at.number_input(key="emb_limit").set_value(100)
    at.button(key="emb_go").click().run()
    assert not at.error and not at.exception
    n = open_store(app_store).con.execute(
        "SELECT count(*) FROM tokens WHERE run = 'words'").fetchone()[0]
    assert any(c.value.startswith(f"Showing {n} of {n} tokens") for c in at.caption)
    scatter = plotly_specs(at)[0]
    assert sum(len(t["x"]) for t in scatter["data"]) == n
    assert {t["name"] for t in scatter["data"]} <= {"0", "1", "2", "3"}  # expert ids


def test_cap_below_the_token_count(app_store):
    at = open_page(app_store, "embeddings", run="words")
    at.radio(key="emb_method").set_value("pca")
    at.number_input(key="emb_limit").set_value(20)
    at.button(key="emb_go").click().run()
    n = open_store(app_store).con.execute(
        "SELECT count(*) FROM tokens WHERE run = 'words'").fetchone()[0]
    assert any(c.value.startswith(f"Showing 20 of {n} tokens") for c in at.caption)


def test_colour_by_tag_and_exit(app_store):
    at = open_page(app_store, "embeddings", run="words")
    at.radio(key="emb_method").set_value("pca")
    at.selectbox(key="emb_color").set_value("tag")
    at.run()
    at.selectbox(key="emb_tag").set_value("kind")
    at.button(key="emb_go").click().run()
    assert {t["name"] for t in plotly_specs(at)[0]["data"]} == {"code", "prose"}
    at.selectbox(key="emb_color").set_value("exit_layer").run()
    assert {t["name"] for t in plotly_specs(at)[0]["data"]} <= {"0", "1"}
