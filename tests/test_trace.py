import json

import numpy as np
import pytest
import torch

import routeviz
from routeviz.errors import NoRoutingModules, RunExists
from tests.toy import ToyMoE, ToyRouter, expected_experts, register_toy


@pytest.fixture(autouse=True)
def _toy():
    register_toy()


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hand_set_router_records_known_experts(store_dir):
    model = ToyMoE(layers=2, k=2)
    ids = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with routeviz.trace(model, store_dir, "toy") as tracer:
        with tracer.batch(examples=[10, 11], tokens=[list("abcde"), list("fgh")]):
            model(ids, attention_mask=mask)
    routes = routeviz.open_store(store_dir).routes("toy")
    assert len(routes) == (5 + 3) * 2 * 2  # non-padding tokens x layers x k
    for row in routes.itertuples():
        b = {10: 0, 11: 1}[row.example]
        token_id = int(ids[b, row.token])
        assert row.choice == expected_experts(token_id)[row.rank]
        assert row.kind == "expert"
    assert set(routes["layer"]) == {0, 1}
    assert set(routes["site"]) == {"routers.0", "routers.1"}
    assert not ((routes.example == 11) & (routes.token >= 3)).any()  # padding not recorded


def test_left_padding_gives_same_token_ids(store_dir):
    model = ToyMoE(layers=1, k=1)
    ids = torch.tensor([[0, 0, 5, 6, 7]])
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    with routeviz.trace(model, store_dir, "left") as tracer:
        with tracer.batch(tokens=[list("fgh")]):
            model(ids, attention_mask=mask)
    routes = routeviz.open_store(store_dir).routes("left").sort_values("token")
    assert routes.token.tolist() == [0, 1, 2]
    assert routes.choice.tolist() == [5 % 4, 6 % 4, 7 % 4]


def test_traced_outputs_are_bit_identical(store_dir):
    torch.manual_seed(0)
    model = ToyMoE()
    ids = torch.randint(0, 16, (3, 7))
    reference = model(ids)
    with routeviz.trace(model, store_dir, "same") as tracer:
        with tracer.batch():
            traced = model(ids)
    assert torch.equal(reference, traced)


def test_exception_removes_hooks_and_keeps_completed_batches(store_dir):
    model = ToyMoE()
    before = _hook_count(model)
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="boom"):
        with routeviz.trace(model, store_dir, "crash") as tracer:
            for step in range(3):
                with tracer.batch(examples=[step]):
                    model(ids)
            assert _hook_count(model) > before
            raise ValueError("boom")
    assert _hook_count(model) == before
    routes = routeviz.open_store(store_dir).routes("crash")
    assert sorted(routes.example.unique()) == [0, 1, 2]
    assert len(routes) == 3 * 3 * 2 * 2


def test_exception_inside_batch_drops_only_that_batch(store_dir):
    model = ToyMoE()
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(RuntimeError):
        with routeviz.trace(model, store_dir, "half") as tracer:
            with tracer.batch(examples=[0]):
                model(ids)
            with tracer.batch(examples=[1]):
                model(ids)
                raise RuntimeError("mid-batch")
    routes = routeviz.open_store(store_dir).routes("half")
    assert routes.example.unique().tolist() == [0]


def test_forward_outside_batch_is_recorded_with_fresh_ids(store_dir):
    model = ToyMoE(layers=1, k=1)
    with routeviz.trace(model, store_dir, "implicit"):
        model(torch.tensor([[1, 2], [3, 4]]))
        model(torch.tensor([[5, 6]]))
    routes = routeviz.open_store(store_dir).routes("implicit")
    assert sorted(routes.example.unique()) == [0, 1, 2]


def test_model_without_router_lists_what_was_searched(store_dir):
    with pytest.raises(NoRoutingModules) as err:
        routeviz.trace(torch.nn.Sequential(torch.nn.Linear(2, 2)), store_dir, "x").__enter__()
    message = str(err.value)
    assert "ToyRouter" in message and "TopKRouter" in message and "Linear" in message


def test_existing_run_is_refused_unless_overwrite(store_dir):
    model = ToyMoE(layers=1)
    for overwrite in (False, True):
        with routeviz.trace(model, store_dir, "again", overwrite=overwrite) as t:
            with t.batch(examples=[0]):
                model(torch.tensor([[1]]))
    with pytest.raises(RunExists):
        routeviz.trace(model, store_dir, "again").__enter__()
    assert len(routeviz.open_store(store_dir).routes("again")) == 2


def test_tags_tokens_and_examples_tables(store_dir):
    model = ToyMoE(layers=1, k=1)
    with routeviz.trace(model, store_dir, "tagged", config={"note": "x"}) as t:
        with t.batch(examples=[0], tokens=[["<b>", "x"]],
                     tags=[{"kind": "code", "token_type": ["op", "name"]}],
                     meta=[{"source": "a.py", "label": "L"}]) as b:
            model(torch.tensor([[1, 2]]))
            b.predict(["P"])
    store = routeviz.open_store(store_dir)
    tags = store.tags("tagged").sort_values(["token", "name"])
    assert tags[["token", "name", "value"]].values.tolist() == [
        [-1, "kind", "code"], [0, "token_type", "op"], [1, "token_type", "name"]]
    assert store.tokens("tagged").text.tolist() == ["<b>", "x"]
    ex = store.examples("tagged").iloc[0]
    assert (ex.source, ex.label, ex.prediction, ex.n_tokens) == ("a.py", "L", "P", 2)
    runs = store.runs()
    assert runs.n_examples.tolist() == [1]
    assert json.loads(runs.config[0]) == {"note": "x"}


def test_include_restricts_sites(store_dir):
    model = ToyMoE(layers=3, k=1)
    with routeviz.trace(model, store_dir, "inc", include=["routers.1"]) as t:
        with t.batch():
            model(torch.tensor([[1, 2]]))
    assert set(routeviz.open_store(store_dir).routes("inc").site) == {"routers.1"}


def test_registered_subclass_is_found_through_mro(store_dir):
    class Sub(ToyRouter):
        pass

    model = ToyMoE(layers=1)
    model.routers[0] = Sub()
    with routeviz.trace(model, store_dir, "sub") as t:
        with t.batch():
            model(torch.tensor([[3]]))
    routes = routeviz.open_store(store_dir).routes("sub")
    assert routes.sort_values("rank").choice.tolist() == expected_experts(3)


def test_rows_are_dense_numpy_types(store_dir):
    model = ToyMoE(layers=1)
    with routeviz.trace(model, store_dir, "types") as t:
        with t.batch():
            model(torch.tensor([[1, 2]]))
    table = routeviz.open_store(store_dir).sql("SELECT * FROM routes").to_arrow_table()
    assert str(table.schema.field("layer").type) == "int16"
    assert str(table.schema.field("rank").type) == "int8"
    assert np.isclose(table.column("weight").to_numpy().reshape(-1, 2).sum(1), 1, atol=0.2).all()


def test_overwrite_that_fails_before_a_batch_keeps_the_old_run(store_dir):
    model = ToyMoE(layers=1, k=1)
    with routeviz.trace(model, store_dir, "precious") as t:
        with t.batch(examples=[0, 1]):
            model(torch.tensor([[1, 2], [3, 4]]))
    with pytest.raises(RuntimeError):
        with routeviz.trace(model, store_dir, "precious", overwrite=True) as t:
            with t.batch(examples=[0]):
                raise RuntimeError("tokenizer blew up")
    store = routeviz.open_store(store_dir)
    assert len(store.routes("precious")) == 4
    assert store.runs().n_examples.tolist() == [2]
    assert not list(store_dir.glob("*/.staging-*"))


def test_overwrite_replaces_every_table(store_dir):
    model = ToyMoE(layers=1, k=1)
    with routeviz.trace(model, store_dir, "r") as t:
        with t.batch(examples=[0], tags=[{"kind": "old"}]):
            model(torch.tensor([[1, 2, 3]]))
    with routeviz.trace(model, store_dir, "r", overwrite=True) as t:
        with t.batch(examples=[5]):
            model(torch.tensor([[1]]))
    store = routeviz.open_store(store_dir)
    assert store.routes("r").example.tolist() == [5]
    assert store.tags("r").empty


def test_hooks_kept_across_traces_record_the_same_and_only_inside_a_trace(store_dir):
    import threading

    from routeviz.capture.hooks import SiteHooks
    from routeviz.capture.sites import find_sites

    model = ToyMoE(layers=2, k=2)
    bare = _hook_count(model)
    ids = torch.tensor([[0, 1, 2, 3]])
    with routeviz.trace(model, store_dir, "cold") as tracer:
        with tracer.batch():
            model(ids)
    kept = SiteHooks(model, find_sites(model))
    registered = _hook_count(model)
    assert registered > bare
    for run in ("warm-1", "warm-2"):
        model(ids)  # between traces: recorded nowhere
        with routeviz.trace(model, store_dir, run, hooks=kept) as tracer:
            with tracer.batch():
                model(ids)
                other = threading.Thread(target=model, args=(torch.tensor([[5, 6]]),))
                other.start()  # another thread's forward is not this trace's
                other.join()
        assert _hook_count(model) == registered  # nothing added, nothing removed
    store = routeviz.open_store(store_dir)
    cold = store.routes("cold").sort_values(["layer", "token", "rank"])
    for run in ("warm-1", "warm-2"):
        warm = store.routes(run).sort_values(["layer", "token", "rank"])
        assert warm[["example", "token", "layer", "choice", "rank"]].values.tolist() == \
            cold[["example", "token", "layer", "choice", "rank"]].values.tolist()
    assert len(store.examples("warm-1")) == 1
    kept.close()
    assert _hook_count(model) == bare
