"""The app with imported runs: the Runs page imports a file by path with the CLI's options,
every page's sidebar says where an imported run came from, Inspect shows its tokens and
routes without What-if / Why, Compare shows the per-layer share of tokens routed
differently and the first divergence."""

import json

import pytest

from routeviz import open_store
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record
from tests.app_support import open_page
from tests.import_fixtures import TEXTS, model_routing, token_ids, vllm_body


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny Mixtral traced over TEXTS (run 'hf'), and vLLM bodies of the same token ids with
    one token's layer-1 experts changed."""
    from routeviz.testing import save_tiny_checkpoint, tiny_mixtral_config

    root = tmp_path_factory.mktemp("app-import")
    ckpt = save_tiny_checkpoint(tiny_mixtral_config(), root / "ckpt")
    store = root / "store"
    record(load_model(str(ckpt)), [Item(text=t, source=t) for t in TEXTS], store, "hf")
    ids = token_ids(ckpt)
    routing = model_routing(ckpt, ids)
    experts = routing[0]["experts"].copy()
    chosen = set(experts[2, 1])
    experts[2, 1] = sorted(set(range(4)) - chosen)[:2]
    routing[0] = dict(routing[0], experts=experts)
    bodies = root / "bodies.jsonl"
    bodies.write_text("".join(json.dumps(vllm_body(r)) + "\n" for r in routing))
    return {"ckpt": ckpt, "store": store, "bodies": bodies, "ids": ids}


def import_by_path(at, served, run):
    at.selectbox(key="import_format").set_value("vllm")
    at.text_input(key="import_run").set_value(run)
    at.text_input(key="import_model").set_value(str(served["ckpt"]))
    at.text_area(key="import_paths").set_value(str(served["bodies"]))
    at.button(key="import_go").click().run()


def test_runs_page_imports_a_file_and_every_page_names_its_source(served):
    at = open_page(served["store"], "runs", run="hf")
    import_by_path(at, served, "served")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "served" in open_store(served["store"]).run_names()
    assert at.session_state["run"] == "served"
    assert any("imported from vllm" in s.value for s in at.success)
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["served", "source"].startswith("imported from vllm (openai-0.22+")
    assert table.loc["hf", "source"] == "traced"
    sidebar = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("Imported from vllm") and "no gate weights" in c for c in sidebar)

    # Inspect: the imported run's tokens and routes, no What-if / Why
    at.switch_page("app_pages/inspect.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("What if and Why are not offered" in c.value for c in at.caption)
    n_routed = len(served["ids"][0]) - 1  # example 0's tokens but the sampled last one
    assert f"Tokens ({n_routed})" in [h.value for h in at.subheader]
    assert not [e for e in at.expander if e.label.startswith(("What if", "Why"))]
    assert any("Imported from vllm" in c.value for c in at.sidebar.caption)


def test_a_bad_import_in_the_app_is_one_line_and_makes_no_run(served, tmp_path):
    bad = tmp_path / "cut.json"
    bad.write_text(served["bodies"].read_text()[:40])
    at = open_page(served["store"], "runs", run="hf")
    at.selectbox(key="import_format").set_value("vllm")
    at.text_input(key="import_run").set_value("broken")
    at.text_area(key="import_paths").set_value(str(bad))
    at.button(key="import_go").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "truncated body" in at.error[0].value
    assert "broken" not in open_store(served["store"]).run_names()


def test_compare_shows_where_an_import_and_a_trace_part(served):
    at = open_page(served["store"], "runs", run="hf")
    import_by_path(at, served, "served-b")
    at.switch_page("app_pages/compare.py").run()
    at.selectbox(key="compare_a").set_value("served-b").run()
    at.selectbox(key="compare_b").set_value("hf").run()
    assert not at.exception, [e.value for e in at.exception]
    layers = next(d.value for d in at.dataframe if "share_differing" in d.value)
    by_layer = layers.set_index("layer")
    assert by_layer.loc[0, "share_differing"] == 0.0
    assert by_layer.loc[1, "share_differing"] == pytest.approx(1 / by_layer.loc[1, "n_units"])
    assert any("First divergence: example 0, token 2, layer 1" in m.value for m in at.markdown)
    assert any("top-1 agreement not computed" in w.value for w in at.warning)
