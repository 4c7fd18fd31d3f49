"""DAE-Syn routing supervision (paper §4.4): names, the supervised subset, the loss term,
a short training run through the CLI, and the shipped -sup<P> models listed and traceable."""

from __future__ import annotations

import json

import pytest
import torch

from routeviz.cli import main
from sample_models import DAE_SYN_SUPERVISED
from sample_models.dae_syn import DAEConfig, DiscreteAutoencoder, weights_dir
from sample_models.dae_syn_train import (
    TrainConfig,
    step_loss,
    supervised_mask,
    supervised_name,
)


def test_names_and_shares():
    assert supervised_name("dae-syn-top-k", 0.1) == ("top-k", "dae-syn-top-k-sup10", 0.1)
    assert supervised_name("dae-syn-reinforce-sup100", None) == ("reinforce",
                                                                 "dae-syn-reinforce-sup100", 1.0)
    assert supervised_name("dae-syn-top-k", None) == ("top-k", "dae-syn-top-k", 0.0)
    with pytest.raises(ValueError):
        supervised_name("dae-syn-top-k", 1.5)


def test_supervised_subsets_are_fixed_sized_and_nested():
    one, ten = supervised_mask(4096, 0.01, 0), supervised_mask(4096, 0.1, 0)
    assert int(one.sum()) == 41 and int(ten.sum()) == 410
    assert bool((ten | ~one).all())  # every example labelled at 1% is labelled at 10%
    assert torch.equal(ten, supervised_mask(4096, 0.1, 0))


def test_supervision_adds_the_routers_cross_entropy_on_labelled_examples_only():
    torch.manual_seed(0)
    model = DiscreteAutoencoder(DAEConfig.for_strategy("top-k")).eval()
    images, tags = torch.rand(6, 3, 32, 32), torch.randint(0, 8, (6, 4))
    cfg = TrainConfig()
    plain, _ = step_loss(model, images, tags, cfg, 1.0)
    none, _ = step_loss(model, images, tags, cfg, 1.0, torch.zeros(6, dtype=torch.bool))
    labelled = torch.tensor([True, True, False, False, False, False])
    supervised, _ = step_loss(model, images, tags, cfg, 1.0, labelled)
    out = model(images)
    expected = sum(torch.nn.functional.nll_loss(torch.log(d.probs[labelled]), tags[labelled, i])
                   for i, d in enumerate(out.decisions))
    assert float(none.detach()) == pytest.approx(float(plain.detach()))
    assert float((supervised - plain).detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_cli_trains_a_supervised_model_under_its_sup_name(tmp_path):
    from sample_models.train import main as train_main

    assert train_main(["dae-syn-top-k", "--supervise", "0.1", "--steps", "3",
                       "--out", str(tmp_path / "m")]) == 0
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["model"] == "dae-syn-top-k-sup10" and metrics["supervise"] == 0.1
    assert json.loads((tmp_path / "m" / "config.json").read_text())["supervise"] == 0.1
    assert train_main(["glyph-vit", "--supervise", "0.1"]) == 2  # only DAE-Syn takes it


def test_supervised_models_are_listed_and_traceable(tmp_path, capsys):
    assert main(["models", "--json"]) == 0
    listed = {m["name"] for m in json.loads(capsys.readouterr().out)}
    names = {spec.name for spec in DAE_SYN_SUPERVISED}
    assert len(names) == 9 and names <= listed
    shipped = [n for n in sorted(names) if (weights_dir(n) / "model.safetensors").is_file()]
    assert "dae-syn-top-k-sup10" in shipped
    for name in shipped:
        assert main(["trace", "--model", name, "--dataset", "dae-syn", "--limit", "16",
                     "--store", str(tmp_path / "s"), "--run", name]) == 0
    assert main(["metrics", "--store", str(tmp_path / "s"), "--run", "dae-syn-top-k-sup10",
                 "--json"]) == 0
    capsys.readouterr()
