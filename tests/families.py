"""Tiny random configs of the MoE families routeviz traces (hidden 16, 2 layers, 4 experts),
and what each router returned, read with a plain forward hook of the test's own."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import transformers as T

K = 2
E = 4
COMMON = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
          "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 64,
          "pad_token_id": 0}
MLA = {"kv_lora_rank": 8, "qk_rope_head_dim": 4, "qk_nope_head_dim": 4, "v_head_dim": 8,
       "moe_intermediate_size": 32, "n_shared_experts": 1, "first_k_dense_replace": 0}


@dataclass
class Family:
    name: str
    make_config: object  # () -> transformers config
    router: str  # class name of the router module, hooked independently by the test
    moe_layers: int  # how many layers route
    weights: str  # how the recorded weights of a token sum: see check_weights
    model_class: str = "AutoModelForCausalLM"
    k: int = K
    extra: dict = field(default_factory=dict)

    def build(self):
        torch.manual_seed(0)
        cls = getattr(T, self.model_class)
        config = self.make_config()
        model = cls.from_config(config) if self.model_class.startswith("Auto") else cls(config)
        return model.eval()


FAMILIES = [
    Family("mixtral", lambda: T.MixtralConfig(num_local_experts=E, num_experts_per_tok=K,
                                              **COMMON), "MixtralTopKRouter", 2, "sum1"),
    Family("qwen2_moe", lambda: T.Qwen2MoeConfig(
        num_experts=E, num_experts_per_tok=K, moe_intermediate_size=32,
        shared_expert_intermediate_size=32, norm_topk_prob=False, **COMMON),
        "Qwen2MoeTopKRouter", 2, "softmax_topk"),
    Family("qwen3_moe", lambda: T.Qwen3MoeConfig(
        num_experts=E, num_experts_per_tok=K, moe_intermediate_size=32, head_dim=8,
        norm_topk_prob=True, **COMMON), "Qwen3MoeTopKRouter", 2, "sum1"),
    Family("olmoe", lambda: T.OlmoeConfig(num_experts=E, num_experts_per_tok=K, **COMMON),
           "OlmoeTopKRouter", 2, "softmax_topk"),
    Family("deepseek_v2", lambda: T.DeepseekV2Config(
        n_routed_experts=E, num_experts_per_tok=K, q_lora_rank=None, n_group=2, topk_group=1,
        topk_method="group_limited_greedy", routed_scaling_factor=1.5, **MLA, **COMMON),
        "DeepseekV2TopkRouter", 2, "scaled_softmax_topk"),
    Family("deepseek_v3", lambda: T.DeepseekV3Config(
        n_routed_experts=E, num_experts_per_tok=K, q_lora_rank=8, n_group=2, topk_group=1,
        routed_scaling_factor=2.5, norm_topk_prob=True, rope_parameters=None, **MLA,
        **COMMON), "DeepseekV3TopkRouter", 2, "scaling_factor"),
    Family("granitemoe", lambda: T.GraniteMoeConfig(num_local_experts=E, num_experts_per_tok=K,
                                                    **COMMON), "GraniteMoeTopKRouter", 2, "sum1"),
    Family("jamba", lambda: T.JambaConfig(
        num_experts=E, num_experts_per_tok=K, expert_layer_period=2, expert_layer_offset=1,
        attn_layer_period=2, attn_layer_offset=0, mamba_d_state=4, mamba_d_conv=2,
        mamba_expand=1, **COMMON), "JambaTopKRouter", 1, "softmax_topk"),
    Family("phimoe", lambda: T.PhimoeConfig(num_local_experts=E, num_experts_per_tok=K,
                                            **COMMON), "PhimoeTopKRouter", 2, "in_0_1"),
    Family("gpt_oss", lambda: T.GptOssConfig(
        num_local_experts=E, num_experts_per_tok=K, head_dim=8, attn_implementation="eager",
        layer_types=["full_attention", "full_attention"], **COMMON),
        "GptOssTopKRouter", 2, "sum1"),
    Family("llama4", lambda: T.Llama4TextConfig(
        num_local_experts=E, num_experts_per_tok=K, intermediate_size_mlp=32, head_dim=8,
        interleave_moe_layer_step=1, **COMMON), "Llama4Router", 2, "sigmoid",
        model_class="Llama4ForCausalLM"),
    Family("switch", lambda: T.SwitchTransformersConfig(
        vocab_size=64, d_model=16, d_ff=32, d_kv=8, num_heads=2, num_layers=2,
        num_decoder_layers=2, num_experts=E, expert_capacity=2, encoder_sparse_step=1,
        decoder_sparse_step=1, pad_token_id=0, decoder_start_token_id=0),
        "SwitchTransformersTop1Router", 2, "top_prob", model_class="SwitchTransformersEncoderModel",
        k=1, extra={"save_class": "SwitchTransformersForConditionalGeneration"}),
]
BY_NAME = {f.name: f for f in FAMILIES}


def hook_routers(model, class_name):
    """A plain forward hook on every router: returns {module name: [outputs]}."""
    seen, handles = {}, []
    for name, module in model.named_modules():
        if type(module).__name__ == class_name:
            def hook(module, inputs, output, name=name):
                seen.setdefault(name, []).append(tuple(t.detach().clone() for t in output))
            handles.append(module.register_forward_hook(hook))
    return seen, handles


def decisions(family: Family, output, batch_size):
    """What the router decided, per [b, s] position: (experts [b, s, k] with -1 where
    dropped, in no particular order; logits [b, s, e]; weights [b, s, k])."""
    if family.name == "switch":
        dispatch, top_prob, logits = output  # [b, s, e], [b, s, 1], [b, s, e]
        kept = dispatch.sum(-1, keepdim=True) > 0
        experts = torch.where(kept, dispatch.argmax(-1, keepdim=True), -1)
        return experts, logits, top_prob
    if family.name == "llama4":
        scores, logits = output  # [t, e]
        weights, experts = scores.topk(family.k, dim=-1)
    else:
        logits, weights, experts = output  # [t, e], [t, k], [t, k]
    b = batch_size
    return (experts.reshape(b, -1, family.k), logits.reshape(b, -1, logits.shape[-1]),
            weights.reshape(b, -1, family.k))


def check_weights(family: Family, config, logits, recorded):
    """recorded: the weights routeviz stored for one token, rank order; logits: [e]."""
    probs = torch.softmax(logits.float(), -1)
    top = probs.topk(family.k).values
    total = float(sum(recorded))
    expected = {
        "sum1": 1.0,
        "softmax_topk": float(top.sum()),
        "scaling_factor": getattr(config, "routed_scaling_factor", None),
        "top_prob": float(probs.max()),
    }
    if family.weights in expected:
        assert abs(total - expected[family.weights]) < 1e-4, (family.name, total, expected)
    elif family.weights == "scaled_softmax_topk":  # group-limited: top-k within the kept group
        assert 0 < total <= config.routed_scaling_factor * float(top.sum()) + 1e-4
    elif family.weights == "sigmoid":
        chosen = torch.sigmoid(logits.float()).topk(family.k).values
        assert torch.allclose(torch.tensor(recorded), chosen, atol=1e-5)
    elif family.weights == "in_0_1":
        assert all(0 < w <= 1 + 1e-6 for w in recorded)
