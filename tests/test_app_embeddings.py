"""Embeddings page: a capped UMAP map (routeviz.embeddings) coloured by expert, tag or exit."""

from routeviz import open_store
from tests import app_support
from tests.app_support import open_page, plotly_specs

app_store = app_support.app_store  # shared fixture


def n_units(store, run, site):
    return open_store(store).con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT example, token FROM routes WHERE run = ? AND "
        "site = ? AND kind = 'expert')", [run, site]).fetchone()[0]


def test_map_is_capped_says_so_and_recolours(app_store):
    at = open_page(app_store, "embeddings", run="words")
    assert not at.get("plotly_chart")  # nothing drawn (no UMAP) until asked
    site = at.selectbox(key="emb_site").value
    n = n_units(app_store, "words", site)
    at.number_input(key="emb_limit").set_value(20)
    at.button(key="emb_go").click().run()
    assert not at.error and not at.exception
    assert any(c.value.startswith(f"20 of {n} tokens shown") for c in at.caption)
    scatter = plotly_specs(at)[0]
    assert sum(len(t["x"]) for t in scatter["data"]) == 20
    assert {t["name"] for t in scatter["data"]} <= {"0", "1", "2", "3"}  # expert ids

    at.radio(key="emb_color").set_value("tag:kind").run()  # same points, no new UMAP
    assert {t["name"] for t in plotly_specs(at)[0]["data"]} <= {"code", "prose"}
    at.radio(key="emb_color").set_value("exit_layer").run()
    assert {t["name"] for t in plotly_specs(at)[0]["data"]} <= {"0", "1"}
    assert sum(len(t["x"]) for t in plotly_specs(at)[0]["data"]) == 20
