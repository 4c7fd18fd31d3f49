"""routeviz/runs/models.py: models by name (the `routeviz.models` entry points) or by
checkpoint directory, and the one-line errors that say what exists when neither fits."""

import json

import pytest

from routeviz.errors import RoutevizError
from routeviz.plugins import model_specs
from routeviz.runs import models
from routeviz.runs.inputs import Item
from routeviz.runs.models import ModelRunner, list_models, load_model


def test_unknown_name_is_one_line_listing_the_installed_models():
    with pytest.raises(RoutevizError) as info:
        load_model("no-such-model")
    message = str(info.value)
    assert "\n" not in message
    names = sorted(model_specs())
    assert {"text-moe", "glyph-vit"} <= set(names)
    assert message == (f"unknown model 'no-such-model': not an installed model "
                       f"({', '.join(names)}) and no such directory")


def test_unknown_name_with_nothing_installed(monkeypatch):
    monkeypatch.setattr(models, "model_specs", dict)
    with pytest.raises(RoutevizError) as info:
        load_model("text-moe")
    assert str(info.value) == ("unknown model 'text-moe': not an installed model "
                               "((none installed)) and no such directory")


def test_a_file_is_neither_a_name_nor_a_checkpoint(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0")
    with pytest.raises(RoutevizError, match="is a file; --model takes a model name or a checkpoint"):
        load_model(str(weights))


@pytest.mark.parametrize("config, message", [
    (None, "is not a transformers checkpoint \\(no config.json\\)"),
    ("{not json", "unreadable config.json"),
    (json.dumps({"model_type": "mixtral", "auto_map": {"AutoModel": "evil.Model"}}),
     "ships its own model code .*--trust-remote-code"),
    (json.dumps({"model_type": "no-such-architecture"}), "cannot read the config"),
])
def test_bad_checkpoint_directories_say_what_is_wrong(tmp_path, config, message):
    if config is not None:
        (tmp_path / "config.json").write_text(config)
    with pytest.raises(RoutevizError, match=message) as info:
        load_model(str(tmp_path))
    assert "\n" not in str(info.value)


def test_a_name_loads_the_installed_model_before_a_same_named_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text-moe").mkdir()  # not a checkpoint: loading it would fail
    runner = load_model("text-moe")
    assert runner.spec is model_specs()["text-moe"] and runner.name == "text-moe"
    assert runner.modality == "text" and "expert" in runner.routing
    config = runner.trace_config()
    assert {k: config[k] for k in ("model", "modality", "routing")} == {
        "model": "text-moe", "modality": "text", "routing": list(runner.spec.routing)}
    assert runner.description == runner.spec.description


def test_list_models_is_every_spec_info():
    listed = list_models()
    assert [m["name"] for m in listed] == list(model_specs())
    assert all(set(m) == {"name", "modality", "routing", "datasets", "description"}
               and m["modality"] in ("text", "image") for m in listed)


def test_a_runner_without_a_spec():
    runner = ModelRunner()
    assert (runner.modality, runner.routing, runner.datasets, runner.description) == (
        "text", (), (), "")
    runner.description = "my own"
    assert runner.description == "my own" and ModelRunner().description == ""
    with pytest.raises(NotImplementedError):
        runner.encode([])


@pytest.mark.slow
def test_checkpoint_directory_runner(mixtral_dir):
    runner = load_model(str(mixtral_dir))
    config = runner.trace_config()
    assert config["checkpoint"] == str(mixtral_dir) and config["model"] == mixtral_dir.name
    assert (config["model_type"], config["n_layers"], config["n_experts"], config["top_k"]) == (
        "mixtral", 2, 4, 2)
    runner.max_tokens = 3
    encoded = runner.encode([Item(text="the model is a gate", source="s"), Item(text="x y")])
    assert encoded.tokens == [["the", "model", "is"], ["x", "y"]]
    assert encoded.notes == ["s: truncated to 3 of 5 tokens"]
    assert [m["source"] for m in encoded.meta] == ["s", "x y"]
    predictions = runner.predict(encoded)
    assert len(predictions) == 2 and all(p.startswith("next token: ") for p in predictions)
    with pytest.raises(RoutevizError, match="is a text model; it cannot take an image"):
        runner.encode([Item(image=object())])
