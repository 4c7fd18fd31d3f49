"""Embeddings page: a capped UMAP map (routeviz.embeddings) coloured by expert, tag or exit."""

import pytest

from routeviz import open_store
from tests import app_support
from tests.app_support import open_page, plotly_specs

app_store = app_support.app_store  # shared fixture


@pytest.fixture(scope="module", autouse=True)
def umap_compiled():
    """UMAP's numba code compiled before any page runs (15 s quiet, up to a minute on a busy
    machine), so the page's first map is not timed out by AppTest's 60 s per run."""
    from routeviz.analysis.embeddings import warm_umap

    warm_umap()


def n_units(store, run, site):
    return open_store(store).con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT example, token FROM routes WHERE run = ? AND "
        "site = ? AND kind = 'expert')", [run, site]).fetchone()[0]


@pytest.mark.slow  # UMAP's first call compiles (numba)
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


@pytest.mark.slow  # UMAP's first call compiles (numba)
def test_hidden_states_per_site_are_mapped_with_webgl(tmp_path):
    from routeviz.runs.record import record
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


@pytest.mark.slow  # UMAP's first call compiles (numba)
def test_title_legend_search_and_tag_filter(app_store):
    at = open_page(app_store, "embeddings", run="words")
    at.number_input(key="emb_limit").set_value(500)  # every token
    at.button(key="emb_go").click().run()
    assert not at.error and not at.exception
    fig = plotly_specs(at)[0]
    title = fig["layout"]["title"]["text"]
    assert title.startswith("Routing vectors at ") and title.endswith("coloured by expert")
    assert "token states" not in title.lower()
    assert fig["layout"]["showlegend"] is True
    labels = [t for trace in fig["data"] for t in trace["text"]]

    at.text_input(key="emb_search").set_value("THE").run()  # any case
    traces = plotly_specs(at)[0]["data"]
    ringed = traces[-1]
    assert ringed["name"] == "contains THE"
    assert sorted(ringed["text"]) == sorted(t for t in labels if "the" in t.lower())
    assert len(ringed["text"]) >= 3  # the, the, the (the cat ... the mat; the best)
    assert any(c.value.startswith(f"{len(ringed['text'])} points contain") for c in at.caption)

    at.text_input(key="emb_search").set_value("").run()
    at.selectbox(key="emb_value").set_value("kind=code").run()
    at.radio(key="emb_color").set_value("tag:kind").run()
    fig = plotly_specs(at)[0]
    assert [t["name"] for t in fig["data"]] == ["code"]  # narrowed to one value...
    assert fig["layout"]["showlegend"] is True  # ...and its legend still drawn
    assert fig["layout"]["legend"]["title"]["text"] == "tag:kind"
    assert any(c.value.startswith("One colour: every point drawn has tag:kind = code")
               for c in at.caption)
    n_code = sum(len(t["x"]) for t in fig["data"])
    assert any(c.value.startswith(f"Filtered to `kind=code`: {n_code} of ") for c in at.caption)
    assert 0 < n_code < len(labels)


def test_a_one_value_colouring_keeps_its_legend():
    import pandas as pd

    from routeviz.figures import embedding_scatter

    points = pd.DataFrame({"x": [0.0, 1.0], "y": [1.0, 0.0], "exit_layer": [11.0, 11.0],
                           "label": ["a", "<b>"]})
    fig = embedding_scatter(points, "exit_layer", title="t").to_plotly_json()
    assert fig["layout"]["showlegend"] is True
    assert [t["name"] for t in fig["data"]] == ["11"]
    assert fig["data"][0]["text"] == ["a", "&lt;b&gt;"]


TEXTS = ["import os\n\ndef read(path):\n    with open(path) as f:\n        return f.read()\n",
         "The quick brown fox jumps over the lazy dog, and then it runs away again.",
         "for i in range(10):\n    print(i * i)  # squares\n"]


@pytest.fixture(scope="module")
def exits_store(tmp_path_factory):
    """text-moe over three texts: its tokens exit at layers 0-3 and are not routed after."""
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record

    path = tmp_path_factory.mktemp("exits") / "store"
    record(load_model("text-moe"), [Item(text=t, source=f"t{i}") for i, t in enumerate(TEXTS)],
           path, "tm")
    return path


@pytest.mark.slow  # UMAP's first call compiles (numba)
def test_exit_colouring_says_which_tokens_never_reached_the_site(exits_store):
    """At the last expert site every token drawn exits at layer 3: those that exited
    earlier never reached it. The page says so with the run's counts, not 'every token
    exits at the same layer'."""
    store = open_store(exits_store)
    site = "blocks.3.mlp.router"
    before = store.query_df(
        "SELECT choice AS layer, count(*) AS n FROM routes WHERE run = 'tm' AND kind = 'exit' "
        "AND choice < 3 GROUP BY choice ORDER BY choice")
    assert before.n.sum() > 0  # the premise: some tokens exit before layer 3
    at = open_page(exits_store, "embeddings", run="tm")
    at.selectbox(key="emb_site").set_value(site)
    at.number_input(key="emb_limit").set_value(5000)
    at.radio(key="emb_color").set_value("exit_layer")
    at.button(key="emb_go").click().run()
    assert not at.error and not at.exception
    drawn = {t["name"] for t in plotly_specs(at)[0]["data"]}
    assert drawn == {"3"}
    captions = " ".join(c.value for c in at.caption)
    assert "every token exits at the same layer" not in captions
    counts = ", ".join(f"{n:,} at layer {layer}" for layer, n in zip(before.layer, before.n))
    assert (f"only the tokens that reached 3.mlp.router (layer 3) are here: "
            f"{before.n.sum():,} tokens exited earlier ({counts}) and never reached it"
            in captions)
