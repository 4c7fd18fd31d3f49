"""routeviz/interventions/whatif.py: a stored example's input recovered, what to load to run
it again, a plain and an intervened run recorded, and their routing side by side."""

import io
import re
from types import SimpleNamespace

import pyarrow as pa
import pytest
from PIL import Image

import routeviz
from routeviz.errors import RoutevizError
from routeviz.interventions.whatif import example_item, model_source, rerun, routing_side_by_side
from routeviz.runs.inputs import Item
from routeviz.store import open_store, schema, write_part
from tests.metrics_store import expert_routes, write_run
from tests.toy import ToyMoE, register_toy


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Run 'r': example 0 a kept text, 1 a text from an older routeviz (no text), 2 an image,
    3 an image whose bytes were not stored."""
    path = tmp_path_factory.mktemp("whatif") / "store"
    write_run(path, "r", expert_routes("g", 0, {(e, 0): [0] for e in range(4)}))
    rows = [{"modality": "text", "text": "def f(x):", "source": "f.py", "label": "code"},
            {"modality": "text", "text": None, "source": "old.txt"},
            {"modality": "image", "image": _png(5, 3), "source": "red.png", "label": "red"},
            {"modality": "image", "image": None, "source": "lost.png"}]
    cols = {f.name: [row.get(f.name) for row in rows] for f in schema.EXAMPLES}
    cols["example"] = [0, 1, 2, 3]
    write_part(path, "examples", "r", pa.table(cols, schema=schema.EXAMPLES))
    return open_store(path)


def test_model_source_prefers_the_checkpoint():
    assert model_source({"checkpoint": "/ckpt/step-10", "model": "step-10"}) == "/ckpt/step-10"
    assert model_source({"model": "text-moe", "checkpoint": None}) == "text-moe"
    for config in ({}, {"model": "", "checkpoint": ""}):
        with pytest.raises(RoutevizError, match="does not say which model recorded it"):
            model_source(config)


def test_example_item_recovers_a_text_or_an_image(store):
    assert example_item(store, "r", 0) == Item(text="def f(x):", source="f.py", label="code")
    image = example_item(store, "r", 2)
    assert image.modality == "image" and image.image.size == (5, 3) and image.text is None
    assert image.image.getpixel((0, 0)) == (200, 10, 10)
    assert (image.source, image.label) == ("red.png", "red")


@pytest.mark.parametrize("example, message", [
    (9, "example 9 is not in run 'r'"),
    (1, "run 'r' did not keep its input texts"),
    (3, "this example's image was not stored"),
])
def test_example_item_says_why_it_cannot(store, example, message):
    with pytest.raises(RoutevizError, match=message):
        example_item(store, "r", example)


def _experts(shown: str) -> list[int]:
    """The expert ids a side-by-side cell names, in its order ("2, 1" or "e2, e1")."""
    return [int(n) for n in re.findall(r"\d+", shown)]


def test_side_by_side_lists_experts_in_rank_order_and_marks_changes(tmp_path):
    path = tmp_path / "s"
    tokens = {0: ["a", "b", "c"]}
    write_run(path, "plain", expert_routes("g", 0, {(0, 0): [2, 1], (0, 1): [0, 3],
                                                    (0, 2): [1, 0]}), tokens=tokens)
    write_run(path, "edited", expert_routes("g", 0, {(0, 0): [2, 1], (0, 1): [3, 0]})
              + expert_routes("h", 1, {(0, 0): [4]}), tokens=tokens)
    frame = routing_side_by_side(open_store(path), "plain", "edited")
    assert frame.token.tolist() == [0, 1, 2, 0] and frame.site.tolist() == ["g", "g", "g", "h"]
    assert frame.text.tolist() == ["a", "b", "c", "a"]
    assert [_experts(p) for p in frame.plain] == [[2, 1], [0, 3], [1, 0], []]
    assert [_experts(w) for w in frame.whatif] == [[2, 1], [3, 0], [], [4]]
    # same experts: unchanged; another top choice, or a decision only one run made: changed
    assert frame.changed.tolist() == [False, True, True, True]


def test_an_empty_intervention_is_refused_before_anything_is_recorded(tmp_path):
    register_toy()
    runner = SimpleNamespace(module=ToyMoE())
    with pytest.raises(RoutevizError, match="choose an expert to ablate or force"):
        rerun(runner, tmp_path / "s", "r", 0, Item(text="x"))
    assert not (tmp_path / "s").exists()
    assert not runner.module.routers[0]._forward_hooks  # the intervention was undone


@pytest.mark.slow
def test_rerun_records_the_plain_run_once_and_a_new_whatif_each_time(tmp_path):
    from routeviz.runs.models import load_model

    runner, path = load_model("text-moe"), tmp_path / "s"
    long_run = "code" + "x" * 130  # names stay within the 128 characters a run name may have
    item = Item(text="def add(x, y): return x + y")
    plain, first = rerun(runner, path, long_run, 3, item, ablate=["blocks.0.mlp.router:1"])
    again, second = rerun(runner, path, long_run, 3, item, ablate=["blocks.0.mlp.router:1"])
    assert plain == again and plain.endswith("-e3-plain") and first != second
    assert max(len(plain), len(first), len(second)) <= 128
    store = routeviz.open_store(path)
    assert sorted(store.run_names()) == sorted([plain, first, second])
    assert store.config(plain)["whatif_of"] == {"run": long_run, "example": 3}
    assert "intervention" not in store.config(plain)
    assert store.config(first)["intervention"]["sites"] == {"blocks.0.mlp.router": {"ablate": [1]}}
    routes = store.routes(first, site="blocks.0.mlp.router", kind="expert")
    assert 1 not in set(routes.choice)
    frame = routing_side_by_side(store, plain, first)
    changed = frame[frame.changed & (frame.site == "blocks.0.mlp.router")]
    assert len(changed) and all(1 in _experts(p) for p in changed.plain)
    assert not any(1 in _experts(w) for w in frame.whatif[frame.site == "blocks.0.mlp.router"])
