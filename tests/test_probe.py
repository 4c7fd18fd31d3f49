"""routeviz.probe: a fixed probe set traced every N training steps into one store, one run
per step, grouped as a series; from a plain loop and from a transformers Trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import routeviz
from routeviz.errors import RoutevizError
from routeviz.runs.probe import run_name, series_names, series_runs
from sample_models import layers

VOCAB, WIDTH, EXPERTS, K = 24, 16, 4, 2


class TinyMoE(nn.Module):
    """Embedding, dropout (so train and eval mode differ), two top-2 MoE FFNs, LM head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.drop = nn.Dropout(0.2)
        self.ffns = nn.ModuleList(layers.MoEFeedForward(WIDTH, 32, EXPERTS, K) for _ in range(2))
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, input_ids):
        h = self.drop(self.embed(input_ids))
        aux = h.new_zeros(())
        for ffn in self.ffns:
            out = ffn(h)
            h, aux = h + out.hidden, aux + out.aux_loss
        return self.head(h), aux


def probe_set():
    ids = torch.arange(2 * 6).view(2, 6) % VOCAB  # [b, s]
    return [{"inputs": ids, "examples": [0, 1],
             "tokens": [[f"t{int(t)}" for t in row] for row in ids],
             "tags": [{"parity": [str(int(t) % 2) for t in row]} for row in ids]}]


def train(store=None, steps: int = 12, every: int = 4, freeze_from: int | None = None):
    """A few SGD steps of TinyMoE on random tokens; probes every `every` steps."""
    torch.manual_seed(0)
    model = TinyMoE()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for step in range(1, steps + 1):
        ids = torch.randint(0, VOCAB, (4, 6))
        logits, aux = model(ids)
        loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()) + aux
        opt.zero_grad()
        loss.backward()
        if freeze_from is None or step < freeze_from:
            opt.step()
        if store is not None:
            routeviz.probe(model, probe_set(), store, "tiny", every=every, step=step)
            assert model.training and model.drop.training  # the mode is restored
    return model


def choices(store, run):
    routes = store.routes(run=run).sort_values(["site", "example", "token", "rank"])
    return routes[["site", "example", "token", "rank", "choice"]].reset_index(drop=True)


def test_plain_loop_writes_one_run_per_probe_step(tmp_path):
    path = tmp_path / "store"
    model = train(path, steps=12, every=4, freeze_from=9)
    store = routeviz.open_store(path)
    runs = series_runs(store, "tiny")
    assert runs["step"].tolist() == [4, 8, 12]
    assert runs["run"].tolist() == ["tiny-step000004", "tiny-step000008", "tiny-step000012"]
    for _, row in runs.iterrows():
        config = json.loads(row["config"])
        assert (config["series"], config["step"]) == ("tiny", row["step"])
        assert config["checkpoint"] is None
        assert row["n_examples"] == 2
        # 2 sites x 2 examples x 6 tokens x top-2
        assert row["n_routes"] == 2 * 2 * 6 * K
    assert series_names(store) == ["tiny"]
    # parameters frozen from step 9 on: steps 8 (after the last update) and 12 route alike;
    # step 4 routed differently before the updates that followed it
    assert choices(store, "tiny-step000008").equals(choices(store, "tiny-step000012"))
    assert not choices(store, "tiny-step000004").equals(choices(store, "tiny-step000012"))
    from routeviz.metrics.series import saturation  # what the Timeline page reads

    pooled = saturation(store, "tiny").query("site == '*'").set_index("step")
    assert pooled.loc[8, "overlap"] == 1.0 and pooled.loc[12, "overlap"] == 1.0
    assert pooled.loc[4, "overlap"] < 1.0
    # the probe ran in eval mode: the recorded routing is the dropout-free one
    seen = []
    handle = model.ffns[0].router.register_forward_hook(lambda m, i, out: seen.append(out[2]))
    with torch.no_grad():
        model.eval()(probe_set()[0]["inputs"])
    handle.remove()
    recorded = store.routes(run="tiny-step000012").query("layer == 0")
    recorded = recorded.sort_values(["example", "token", "rank"])["choice"].to_numpy()
    assert recorded.tolist() == seen[0].reshape(-1).tolist()
    store.close()


def test_probing_does_not_change_training(tmp_path):
    """The RNG is forked around each probe: dropout draws the same masks with or without."""
    probed, plain = train(tmp_path / "s", every=2), train(None)
    for a, b in zip(probed.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)


def test_step_none_counts_calls_and_callable_probe(tmp_path):
    torch.manual_seed(0)
    model = TinyMoE().train()
    batches = probe_set()

    def run_probe(tracer):
        with tracer.batch(examples=[5, 6], tokens=batches[0]["tokens"]):
            model(batches[0]["inputs"])

    written = [routeviz.probe(model, run_probe, tmp_path, "calls", every=3) for _ in range(7)]
    assert written == [None, None, "calls-step000003", None, None, "calls-step000006", None]
    store = routeviz.open_store(tmp_path)
    assert series_runs(store, "calls")["step"].tolist() == [3, 6]
    assert sorted(store.examples(run="calls-step000003")["example"]) == [5, 6]
    assert series_runs(store, "other").empty


def test_bad_arguments_are_one_line_errors(tmp_path):
    model = TinyMoE()
    with pytest.raises(RoutevizError, match="every"):
        routeviz.probe(model, probe_set(), tmp_path, "s", every=0, step=1)
    with pytest.raises(RoutevizError, match="invalid run name"):
        routeviz.probe(model, probe_set(), tmp_path, "bad/name", step=1)
    with pytest.raises(RoutevizError, match="not a dict with 'inputs'"):
        routeviz.probe(model, [torch.zeros(1, 3, dtype=torch.long)], tmp_path, "s", step=1)
    assert run_name("s", 7) == "s-step000007"


def test_model_runner_with_items_records_predictions(tmp_path):
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model

    runner = load_model("text-moe")
    items = [Item(text="def f(x):\n    return x + 1\n", source="a"),
             Item(text="The module provides functions.", source="b")]
    run = routeviz.probe(runner, items, tmp_path, "text", step=0, checkpoint="ckpt/0",
                         config={"lr": 0.1}, weight_dtype="float16")
    store = routeviz.open_store(tmp_path)
    config = store.config(run)
    assert (config["series"], config["step"]) == ("text", 0)
    assert (config["checkpoint"], config["lr"]) == ("ckpt/0", 0.1)
    assert config["model"] == "text-moe" and "exit_threshold" in config
    examples = store.examples(run=run).sort_values("example")
    assert examples["source"].tolist() == ["a", "b"]
    assert all(p.startswith("next token") for p in examples["prediction"])
    assert set(store.routes(run=run)["kind"]) == {"expert", "keep", "exit"}


def test_trainer_callback_probes_every_k_steps(tmp_path):
    """The callback's hooks called as a Trainer calls them, with a real TrainerState and
    TrainerControl (Trainer and TrainingArguments need accelerate, which routeviz does not
    depend on; the callback reads only `output_dir` from the arguments)."""
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

    from routeviz.runs.probe import RouteProbeCallback
    from routeviz.testing import tiny_mixtral_config

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_mixtral_config(vocab_size=64, hidden_size=16,
                                                                 intermediate_size=16))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids = torch.randint(2, 64, (4, 8))
    out = tmp_path / "out"
    args = SimpleNamespace(output_dir=str(out), save_steps=3)
    state, control = TrainerState(), TrainerControl()
    callback = RouteProbeCallback([{"inputs": {"input_ids": ids[:2]}}], tmp_path / "store",
                                  "mix", every=3)
    model.train()
    for step in range(1, 8):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        state.global_step = step
        control.should_save = step % args.save_steps == 0  # as DefaultFlowCallback sets it
        callback.on_step_end(args, state, control, model=model)
        assert model.training
    control.should_save = False
    callback.on_train_end(args, state, control, model=model)
    runs = series_runs(tmp_path / "store", "mix")
    assert runs["step"].tolist() == [3, 6, 7]  # every 3, and the last step at the end
    assert runs["checkpoint"].tolist() == [f"{out}/checkpoint-3", f"{out}/checkpoint-6", None]
    assert (runs["n_routes"] == 2 * 2 * 8 * 2).all()  # 2 layers x 2 examples x 8 tokens x top-2


@pytest.mark.slow  # trains
def test_text_moe_training_writes_its_probe_series(tmp_path):
    from sample_models.text_moe_train import PROBE_EXAMPLES, PROBE_TOKENS, train

    metrics = train("text-moe", out_dir=tmp_path / "w", steps=3, corpus_limit=12, baseline=False,
                    n_eval=2, probe_store=tmp_path / "series", probe_every=2)
    runs = series_runs(tmp_path / "series", "text-moe")
    assert runs["step"].tolist() == [0, 2, 3]  # before training, every 2, and the last step
    assert (runs["n_examples"] == PROBE_EXAMPLES).all()
    store = routeviz.open_store(tmp_path / "series")
    assert store.tokens(run="text-moe-step000003").groupby("example").size().max() <= PROBE_TOKENS
    assert set(store.routes(run="text-moe-step000000")["kind"]) >= {"expert", "keep", "exit"}
    assert metrics["heldout_curve"]["points"][-1][0] == 3


def test_train_cli_refuses_probe_for_a_recipe_without_one(tmp_path, capsys):
    from sample_models.train import main

    assert main(["glyph-vit", "--out", str(tmp_path), "--probe", str(tmp_path / "s")]) == 2
    assert "takes no --probe" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # trains
def test_dae_syn_training_writes_its_probe_series(tmp_path):
    from sample_models.dae_syn_train import PROBE_IMAGES, train

    train("dae-syn-top-k", out_dir=tmp_path / "w", steps=3, probe_store=tmp_path / "s",
          probe_every=2)
    runs = series_runs(tmp_path / "s", "dae-syn-top-k")
    assert runs["step"].tolist() == [0, 2, 3]
    assert (runs["n_examples"] == PROBE_IMAGES).all()
    assert (runs["n_routes"] == 4 * PROBE_IMAGES).all()  # 4 routers, one choice per image
    store = routeviz.open_store(tmp_path / "s")
    examples = store.examples(run="dae-syn-top-k-step000003")
    assert examples["image"].isna().all()  # pixels are left out of the series
    tags = store.tags(run="dae-syn-top-k-step000003")
    assert set(tags["name"]) == {"letter", "location", "fg", "bg"}
    # the same images, in the same order, at every step
    first = store.examples(run="dae-syn-top-k-step000000").sort_values("example")["source"]
    assert first.tolist() == examples.sort_values("example")["source"].tolist()


SHIPPED = Path(__file__).resolve().parents[1] / "sample_models" / "data" / "series"


def test_shipped_dae_syn_series_ends_at_the_shipped_weights(tmp_path):
    """21 probes per learned strategy, step 0 to 3000; the last one routes exactly as the
    shipped weights do on the same probe set (the series was recorded by the run that
    reproduced them)."""
    from routeviz.runs.models import load_model
    from sample_models.dae_syn_train import probe_set

    store = routeviz.open_store(SHIPPED / "dae-syn")
    assert series_names(store) == ["dae-syn-reinforce", "dae-syn-st-gumbel", "dae-syn-top-k",
                                   "dae-syn-top-k-sup10"]  # sup10: the Timeline's supervised twin
    for name in series_names(store):
        assert series_runs(store, name)["step"].tolist() == list(range(0, 3001, 150))
    for model in ("dae-syn-top-k", "dae-syn-top-k-sup10"):
        runner = load_model(model)
        run = routeviz.probe(runner, probe_set(runner), tmp_path / model, "again", step=3000)
        again = routeviz.open_store(tmp_path / model)
        assert choices(again, run).equals(choices(store, f"{model}-step003000"))


def test_shipped_text_moe_series_covers_training_and_exits_appear():
    from sample_models.text_moe_train import PROBE_EXAMPLES, PROBE_TOKENS, STEPS

    store = routeviz.open_store(SHIPPED / "text-moe")
    runs = series_runs(store, "text-moe")
    assert runs["step"].tolist() == list(range(0, STEPS + 1, STEPS // 20))
    assert (runs["n_examples"] == PROBE_EXAMPLES).all()
    assert store.tokens(run=runs["run"].iloc[-1]).groupby("example").size().max() == PROBE_TOKENS
    early = store.query_df("SELECT run, avg(CASE WHEN choice < 3 THEN 1.0 ELSE 0 END) AS share "
                           "FROM routes WHERE kind = 'exit' GROUP BY run").set_index("run").share
    first, last = runs["run"].iloc[0], runs["run"].iloc[-1]
    assert early[first] == 0 and early[last] > 0.03  # the untrained model never exits early
