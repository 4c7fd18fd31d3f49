"""`routeviz explain`: one attribution per input token or patch; completeness within delta."""

import json

import pytest
import torch

from routeviz.cli import main
from routeviz.interventions.explain import explain
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model

TEXT = "def add(x, y):\n    return x + y"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def run_json(capsys, *argv):
    assert main(["explain", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def site_logits(runner, inputs, site):
    """The site's router output rows [t, e], read by our own forward hook (not the tool's)."""
    seen = {}

    def keep(module, args, output):
        seen["logits"] = (output[0] if isinstance(output, tuple) else output).detach()

    handle = runner.module.get_submodule(site).register_forward_hook(keep)
    try:
        with torch.no_grad():
            runner.module(**inputs)
    finally:
        handle.remove()
    return seen["logits"]


def check_complete(data, tolerance):
    total = sum(a["attribution"] for a in data["attributions"])
    target = data["target"]
    assert total == pytest.approx(data["sum_attributions"], abs=1e-9)
    gap = total - (target["logit"] - target["baseline_logit"])
    assert abs(gap - data["convergence_delta"]) < 1e-3 * max(1.0, abs(gap))  # delta is the gap
    assert abs(data["convergence_delta"]) < tolerance * max(1.0, abs(target["logit"]))


@pytest.mark.parametrize("model", ["text-moe", "mixtral"])
def test_text_attributions_per_token_sum_to_logit_change(model, mixtral_dir, capsys):
    name = str(mixtral_dir) if model == "mixtral" else "text-moe"
    site = "model.layers.1.mlp.gate" if model == "mixtral" else "blocks.0.mlp.router"
    text = "the model of the expert token route" if model == "mixtral" else TEXT
    token = 4
    data = run_json(capsys, "--model", name, "--text", text, "--site", site,
                    "--token", str(token), "--steps", "24")
    runner = load_model(name)
    encoded = runner.encode([Item(text=text)])
    assert [a["text"] for a in data["attributions"]] == encoded.tokens[0]  # one per token
    logits = site_logits(runner, encoded.inputs, site)  # [t, e]; one example: row = token
    target = data["target"]
    assert target["site"] == site and target["token"] == token
    assert target["expert"] == int(logits[token].argmax())  # default: the top-1 expert
    assert target["logit"] == pytest.approx(float(logits[token, target["expert"]]), abs=1e-4)
    pad = runner.tokenizer.pad_token_id if model == "mixtral" else runner.cfg.pad_id
    baseline = {**encoded.inputs, "input_ids": torch.full_like(encoded.inputs["input_ids"], pad)}
    base = site_logits(runner, baseline, site)
    assert target["baseline_logit"] == pytest.approx(float(base[token, target["expert"]]),
                                                     abs=1e-4)
    check_complete(data, tolerance=0.02)
    # causal models: tokens after the routed one cannot move its router logit
    assert all(a["attribution"] == 0.0 for a in data["attributions"][token + 1:])
    assert any(abs(a["attribution"]) > 1e-3 for a in data["attributions"][:token + 1])


def test_an_explicit_expert_and_the_text_output(capsys):
    data = run_json(capsys, "--model", "text-moe", "--text", TEXT, "--site",
                    "blocks.0.mlp.router", "--token", "3", "--expert", "5", "--steps", "16")
    assert data["target"]["expert"] == 5
    check_complete(data, tolerance=0.02)
    assert main(["explain", "--model", "text-moe", "--text", TEXT, "--site",
                 "blocks.0.mlp.router", "--token", "3", "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "convergence delta" in out and "'x'" in out


def test_image_attributions_per_patch():
    from sample_models.glyphs import glyph_batch, glyph_item

    runner = load_model("glyph-vit")
    item = glyph_item(glyph_batch(1, seed=3)[0], 0)
    result = explain(runner, item, "blocks.1.mlp.router", 7, n_steps=24)
    data = result.to_json()
    assert data["input"]["unit"] == "patch" and data["input"]["grid"] == [6, 6]
    assert len(data["attributions"]) == 36 and data["attributions"][7]["text"] == "r1c1"
    check_complete(data, tolerance=0.1)
    assert any(abs(a["attribution"]) > 1e-4 for a in data["attributions"])


@pytest.mark.parametrize("argv, message", [
    (["--site", "nope", "--token", "1"], "unknown site 'nope'; available: blocks.0.mlp.router"),
    (["--site", "blocks.0.mlp.router", "--token", "99"],
     "token 99 is out of range: the input has 12 tokens (0-11)"),
    (["--site", "blocks.0.mlp.router", "--token", "1", "--expert", "8"],
     "expert 8 is out of range: blocks.0.mlp.router has 8 experts (0-7)"),
    (["--site", "blocks.1.mod", "--token", "1"], "blocks.1.mod decides keep, not experts"),
])
def test_bad_site_token_or_expert_is_one_line(argv, message, capsys):
    assert main(["explain", "--model", "text-moe", "--text", TEXT, *argv, "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_pretrained_expert_scores_per_wordpiece():
    """minilm-moe's routers rank experts by activation norm: the attributed target is that
    score, one attribution per WordPiece token ([CLS] and [SEP] included)."""
    runner = load_model("minilm-moe")
    item = Item(text=TEXT, source="t")
    data = explain(runner, item, "encoder.layers.0.moe.router", 3, n_steps=24).to_json()
    tokens = runner.encode([item]).tokens[0]
    assert [a["text"] for a in data["attributions"]] == tokens and tokens[0] == "[CLS]"
    assert data["target"]["n_experts"] == 16 and data["target"]["text"] == "("
    check_complete(data, tolerance=0.02)
    # a bidirectional encoder: tokens after the routed one move it too
    assert any(abs(a["attribution"]) > 1e-3 for a in data["attributions"][4:])
