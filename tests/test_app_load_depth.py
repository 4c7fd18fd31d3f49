"""Load & depth page: load per site with starved experts, path Sankey, kept fraction, exits."""

from routeviz import metrics, open_store
from tests import app_support
from tests.app_support import open_page, plotly_specs

app_store = app_support.app_store  # shared fixture


def test_text_run_shows_every_section(app_store):
    at = open_page(app_store, "load_depth", run="words")
    assert not at.error
    kinds = [fig["data"][0]["type"] for fig in plotly_specs(at)]
    assert kinds == ["bar", "heatmap", "sankey", "scatter", "bar"]
    store = open_store(app_store)
    load = metrics.load(store, "words")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Expert sites"] == "2"
    assert shown["Starved experts"] == str(int(load.sites.n_starved.sum()))
    ex = metrics.exits(store, "words")
    assert shown["Compute saved"] == f"{ex.compute_saved:.1%}"
    # 0-based exit layers, said once: "layer 1.25 (ran 2.25 of 3 blocks)"
    assert shown["Mean exit layer"] == (f"layer {ex.mean_exit_layer:.2f} (ran "
                                        f"{ex.mean_exit_layer + 1:.2f} of {ex.n_layers} blocks)")
    bars = [t for t in plotly_specs(at)[0]["data"] if t["type"] == "bar"]
    assert len(bars) == 2 and bars[0]["x"] == ["e0", "e1", "e2", "e3"]
    first_site = load.experts[load.experts.site == load.sites.site.iloc[0]].sort_values("expert")
    assert [round(v, 6) for v in bars[0]["y"]] == [round(v, 6) for v in first_site.share]


def test_image_run_has_per_example_exits(app_store):
    at = open_page(app_store, "load_depth", run="pictures")
    assert not at.error
    exits = plotly_specs(at)[-1]
    assert exits["layout"]["title"]["text"].startswith("Exit depth")
    examples = next(t for t in exits["data"] if t["name"] == "examples")
    assert sum(examples["customdata"]) == 2  # both images, counted
    assert abs(sum(examples["y"]) - 1.0) < 1e-9  # drawn as shares
    assert not any(t["name"] == "tokens" for t in exits["data"])  # per-image exits only


def test_top_paths_name_the_site_of_each_step(app_store):
    """A path reads `moe.0.router:e1 → moe.1.router:e3`, not "1>3": which site each expert
    belongs to, and a token dropped at a site (toy-text's depth.1 drops half) skips it."""
    at = open_page(app_store, "load_depth", run="words")
    table = next(d.value for d in at.dataframe if "path" in d.value.columns)
    res = metrics.paths(open_store(app_store), "words")
    expected = [" → ".join(f"{site}:e{expert}" for site, expert in zip(sites, path.split(">")))
                for sites, path in zip(res.top_paths.sites, res.top_paths.path)]
    assert table["path"].tolist() == expected
    assert all(p.startswith(("moe.0.router:e", "moe.1.router:e")) for p in expected)
    assert any(" → moe.1.router:e" in p for p in expected)
    assert table["count"].tolist() == res.top_paths["count"].tolist()
    assert "sites" not in table.columns


def test_per_site_table_is_sent_once_opened(app_store):
    at = open_page(app_store, "load_depth", run="words")
    assert not any("cv" in d.value.columns for d in at.dataframe)  # closed: not sent
    at.session_state["load_site_table"] = True
    at.run()
    table = next(d.value for d in at.dataframe if "cv" in d.value.columns)
    assert len(table) == len(metrics.load(open_store(app_store), "words").sites)
