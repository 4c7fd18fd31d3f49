"""captum Integrated Gradients on one router logit of tiny transformers MoE models."""

import pytest
import torch

from routeviz.errors import RoutevizError
from routeviz.interventions.attribution import router_attribution
from routeviz.interventions.explain import attribute_item
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model


@pytest.fixture(scope="module")
def runner(mixtral_dir):
    return load_model(str(mixtral_dir))


def _router_logits(model, inputs, site):
    seen = {}

    def keep(module, args, out):  # returns None: the output is left as it is
        seen["logits"] = out[0].detach()

    handle = dict(model.named_modules())[site].register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return seen["logits"]  # [t, e]


def test_layer_ig_on_tiny_mixtral(runner):
    text = "the model of the expert token route"
    site, token = "model.layers.1.mlp.gate", 3
    res = attribute_item(runner, Item(text=text, source=text), site, token, n_steps=16)
    assert res.tokens == text.split() and len(res.scores) == len(res.tokens)
    logits = _router_logits(runner.module, runner.encode([Item(text=text)]).inputs, site)
    assert res.expert == int(logits[token].argmax())  # default target: the top-1 expert
    assert res.logit == pytest.approx(float(logits[token, res.expert]), abs=1e-5)
    # causal attention: positions after the routed token cannot move its router logit
    assert all(s == 0.0 for s in res.scores[token + 1:])
    assert any(abs(s) > 1e-4 for s in res.scores[:token + 1])
    # completeness: the attributions sum to logit(input) - logit(baseline), up to delta
    assert abs(res.delta) < 0.05 * max(1.0, abs(res.logit))
    assert not any(h for m in runner.module.modules() for h in m._forward_hooks.values()
                   if getattr(h, "__name__", "") == "keep_output")


def test_embeddings_ig_and_explicit_expert_on_another_topk_family():
    from transformers import AutoModelForCausalLM, Qwen2MoeConfig

    torch.manual_seed(0)
    config = Qwen2MoeConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                            moe_intermediate_size=32, shared_expert_intermediate_size=32,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            num_experts=4, num_experts_per_tok=2, max_position_embeddings=64)
    model = AutoModelForCausalLM.from_config(config).eval()
    inputs = {"input_ids": torch.tensor([[5, 9, 13, 2, 7]]),
              "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    sites = [n for n, m in model.named_modules() if type(m).__name__.endswith("TopKRouter")]
    res = router_attribution(model, inputs, sites[0], token=4, expert=2, method="embeddings",
                             n_steps=16)
    assert res.expert == 2 and len(res.scores) == 5
    assert abs(res.delta) < 0.05 * max(1.0, abs(res.logit))


def test_errors(runner):
    item = Item(text="the model", source="x")
    with pytest.raises(RoutevizError, match="unknown site 'nope'; available: .*mlp.gate"):
        attribute_item(runner, item, "nope", 0)
    with pytest.raises(RoutevizError, match="token 9 is out of range"):
        attribute_item(runner, item, "model.layers.0.mlp.gate", 9)
    with pytest.raises(RoutevizError, match="expert 7 is out of range"):
        attribute_item(runner, item, "model.layers.0.mlp.gate", 0, expert=7)
