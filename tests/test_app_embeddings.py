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


def test_hidden_states_per_site_are_mapped_with_webgl(tmp_path):
    from routeviz.record import record
    from tests.app_toys import load, toy_dataset

    store = tmp_path / "states"
    record(load("toy-text"), toy_dataset(), store, "states", batch_size=4, hidden_states=True)
    recorded = open_store(store).query_df(
        "SELECT site, count(*) AS n FROM embeddings WHERE run = 'states' GROUP BY site")
    assert len(recorded) >= 1
    at = open_page(store, "embeddings", run="states")
    at.radio(key="emb_source").set_value("hidden").run()
    box = at.selectbox(key="emb_state_site")
    assert sorted(box.options) == sorted(data_short(recorded.site))
    site = recorded.site.iloc[-1]
    n = int(recorded[recorded.site == site].n.iloc[0])
    box.set_value(site).run()
    at.number_input(key="emb_limit").set_value(n + 10)
    at.button(key="emb_go").click().run()
    assert not at.error and not at.exception
    caption = next(c.value for c in at.caption if "drawn with WebGL" in c.value)
    assert caption.startswith(f"{n} of {n} tokens shown at ") and f"{n:,} points drawn" in caption
    scatter = plotly_specs(at)[0]
    assert {t["type"] for t in scatter["data"]} == {"scattergl"}
    assert sum(len(t["x"]) for t in scatter["data"]) == n  # every point, none sampled away


def data_short(sites):
    from routeviz.figures import data

    return [data.short_site(s) for s in sites]
