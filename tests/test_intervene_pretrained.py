"""Interventions on the pretrained conditional models (minilm-moe, dinov2-small), whose
routers take their scores and settings as arguments: an ablated expert is never chosen at
any site, a forced one is rank 0 for every token at its site, top-k sets the experts per
token, and with keep, merge and exit turned off every token is kept, none merged, and
every example runs to the last layer."""

import io

import numpy as np
import pytest

import routeviz
from routeviz.interventions.intervene import intervene
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record


def image_item():
    from PIL import Image

    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return Item(image=Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), source="noise.png")


INPUTS = {"minilm-moe": lambda: Item(text="The cat sat on the mat, and the dog sat by the door "
                                          "while the rain fell on the old town."),
          "dinov2-small": image_item}


@pytest.mark.parametrize("name", list(INPUTS))
def test_pretrained_ablate_force_top_k_and_turn_off(name, store_dir):
    runner = load_model(name)
    items = [INPUTS[name]()]
    record(runner, items, store_dir, "plain")
    store = routeviz.open_store(store_dir)
    plain = store.routes(run="plain")
    first = plain[plain.kind == "expert"].site.iloc[0]
    ablated = int(plain[(plain.kind == "expert") & (plain.site == first)].choice.mode()[0])
    forced_site = plain[plain.kind == "expert"].site.unique()[1]
    forced = (ablated + 1) % 16
    assert {"keep", "merge"} <= set(plain.kind) and 0 in set(plain[plain.kind == "keep"].choice)
    with intervene(runner.module, ablate=[f"*:{ablated}"], force=[f"{forced_site}:{forced}"],
                   top_k=3, disable=["keep", "merge", "exit"]) as edit:
        record(runner, items, store_dir, "edited", config={"intervention": edit.config})
    store = routeviz.open_store(store_dir)
    routes = store.routes(run="edited")
    expert = routes[routes.kind == "expert"]
    assert ablated not in set(expert.choice)
    assert set(expert[(expert.site == forced_site) & (expert["rank"] == 0)].choice) == {forced}
    assert (expert.groupby(["site", "example", "token"]).size() == 3).all()
    assert set(routes[routes.kind == "keep"].choice) == {1}
    assert "merge" not in set(routes.kind)
    last = store.facts("edited").config["n_layers"] - 1
    assert set(routes[routes.kind == "exit"].choice) == {last}
    assert store.facts("edited").config["intervention"]["top_k"] == 3


def test_what_if_compute_counts_the_experts_that_ran(store_dir):
    """A what-if with top-k 4 reports the compute of top-k 4 (as running the model with its
    own top-k set to 4 does), not that of the plain run's top-k."""
    from routeviz.interventions.whatif import rerun

    runner = load_model("minilm-moe")
    assert runner.knobs.top_k != 4
    item = INPUTS["minilm-moe"]()
    record(runner, [item], store_dir, "source")
    store = routeviz.open_store(store_dir)
    plain, whatif = rerun(runner, store_dir, "source", 0, item, top_k=4)
    runner.set_knobs(top_k=4)
    record(runner, [item], store_dir, "real-top-4")
    store = routeviz.open_store(store_dir)
    said = {run: store.example_info(run, 0)["prediction"] for run in (plain, whatif, "real-top-4")}
    assert "of dense" in said[whatif]
    assert said[whatif] != said[plain]
    assert said[whatif] == said["real-top-4"]
