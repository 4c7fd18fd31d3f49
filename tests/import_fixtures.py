"""Routing of a tiny real model, written the way each engine's own writer code writes it.

`model_routing` runs a checkpoint on token ids with plain torch forward hooks on its routers
(not routeviz), so a test compares an import with the router's own top-k. The writers below
follow the engines' source:

- vLLM: the OpenAI server's `choices[i].routed_experts` = base64 of `np.save` bytes (0.22+,
  uint8 up to 256 experts), nested lists (0.21); offline `RequestOutput` arrays saved with
  `np.save`. Rows = prompt + output - 1, layer axis = num_hidden_layers (dense rows 0).
- SGLang: `meta_info.routed_experts` = base64 of the host buffer's raw row-major bytes
  (`[seqlen - 1, num_hidden_layers, top_k]`), `routed_experts_dtype` in newer versions,
  `routed_experts_start_len` when the request set it.
- SGLang's expert-distribution recorder (`per_token`): `torch.save` of
  `{"records": [...], "last_physical_to_logical_map": [L, physical]}`, each record with
  `forward_pass_id`, `rank`, `gatherer_key`, `input_ids`, `positions`, `extend_seq_lens`,
  `forward_mode`, `topk_ids_of_layer` [L, N, 8] (-1 padded, physical ids), `misc_objects`.
- Megatron-Core RouterTracer: `router_trace_rank{r}.jsonl`, one `json.dumps` line per (step,
  block, layer), `top_indices` in ascending expert order (from the routing map), and the
  `logits_rank{r}.bin` bf16 sidecar with `logit_offset` / `logit_bytes` / `logit_shape`.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import torch

TEXTS = ["the model route token to the expert", "def x ( y ) : return y + 1",
         "import x from self class"]


QWEN_MOE = {"vocab_size": 128, "hidden_size": 32, "intermediate_size": 64,
            "moe_intermediate_size": 16, "shared_expert_intermediate_size": 32,
            "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_experts": 4, "num_experts_per_tok": 2, "mlp_only_layers": [1],
            "decoder_sparse_step": 1, "max_position_embeddings": 128, "pad_token_id": 0}


def qwen_moe_config(**overrides):
    """Three layers, the middle one dense (mlp_only_layers), unless overridden."""
    from transformers import Qwen2MoeConfig

    return Qwen2MoeConfig(**{**QWEN_MOE, **overrides})


def token_ids(ckpt, texts=TEXTS) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    return [tok(t)["input_ids"] for t in texts]


@torch.no_grad()
def model_routing(ckpt, ids_lists) -> list[dict]:
    """Per sequence: experts [T, n_layers, k] (0 at dense layers, as vLLM's buffer),
    weights [T, n_layers, k] and logits [T, n_layers, E] (NaN at dense layers)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
    n_layers = model.config.num_hidden_layers
    seen = {}
    handles = []
    for name, module in model.named_modules():
        if type(module).__name__.endswith("TopKRouter"):
            layer = int(name.split("layers.")[1].split(".")[0])
            handles.append(module.register_forward_hook(
                lambda m, i, out, layer=layer: seen.__setitem__(layer, out)))
    out = []
    try:
        for ids in ids_lists:
            seen.clear()
            model(torch.tensor([ids]))
            k = next(iter(seen.values()))[2].shape[-1]
            e = next(iter(seen.values()))[0].shape[-1]
            experts = np.zeros((len(ids), n_layers, k), np.int64)
            weights = np.full((len(ids), n_layers, k), np.nan, np.float32)
            logits = np.full((len(ids), n_layers, e), np.nan, np.float32)
            for layer, (lg, wt, ix) in seen.items():
                experts[:, layer] = ix.numpy()
                weights[:, layer] = wt.float().numpy()
                logits[:, layer] = lg.float().numpy()
            out.append({"ids": list(ids), "experts": experts, "weights": weights,
                        "logits": logits, "moe_layers": sorted(seen)})
    finally:
        for h in handles:
            h.remove()
    return out


def write_tokens(path: Path, ids_lists) -> Path:
    path.write_text("".join(json.dumps({"token_ids": ids}) + "\n" for ids in ids_lists))
    return path


# -- vLLM --------------------------------------------------------------------------------
def npy_base64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def vllm_body(routing: dict, encoding: str = "base64", prompt_len: int | None = None,
              with_ids: bool = True, prompt_start: int = 0) -> dict:
    """A chat-completions body; rows = prompt + output - 1 (from prompt_start)."""
    rows = routing["experts"][prompt_start:-1]
    if encoding == "base64":
        value = npy_base64(rows.astype(np.uint8))
    else:
        value = rows.tolist()
    ids = routing["ids"]
    prompt_len = len(ids) - 2 if prompt_len is None else prompt_len
    choice = {"index": 0, "message": {"role": "assistant", "content": "..."},
              "finish_reason": "length", "routed_experts": value}
    body = {"id": "chatcmpl-1", "object": "chat.completion", "model": "tiny",
            "choices": [choice],
            "usage": {"prompt_tokens": prompt_len, "completion_tokens": len(ids) - prompt_len}}
    if with_ids:
        body["prompt_token_ids"] = ids[:prompt_len]
        choice["token_ids"] = ids[prompt_len:]
    return body


# -- SGLang -------------------------------------------------------------------------------
def sglang_body(routing: dict, dtype: str | None = "int32", start_len: int = 0) -> dict:
    """A /generate body: raw row-major bytes [seqlen - 1 - start, L * k], base64."""
    rows = routing["experts"][start_len:-1]
    ids = routing["ids"]
    prompt_len = len(ids) - 2
    meta = {"id": "req", "prompt_tokens": prompt_len, "completion_tokens": len(ids) - prompt_len,
            "routed_experts": base64.b64encode(
                np.ascontiguousarray(rows.astype(dtype or "int32")).tobytes()).decode("ascii")}
    if dtype is not None:
        meta["routed_experts_dtype"] = dtype
    if start_len:
        meta["routed_experts_start_len"] = start_len
    return {"text": "...", "output_ids": ids[prompt_len:], "meta_info": meta}


def sglang_recorder_dump(path: Path, routings: list[dict], physical_of_logical,
                         n_physical: int, rank=0) -> Path:
    """One prefill forward pass per sequence; ids physical (`physical_of_logical[layer]`
    maps a logical expert to the replica chosen), width 8 padded with -1, dense layers -1;
    the other slots hold replicas (slot % experts)."""
    n_layers, n_experts = routings[0]["experts"].shape[1], len(physical_of_logical[0])
    logical_of_physical = np.tile(np.arange(n_physical) % n_experts, (n_layers, 1))
    for layer in range(n_layers):
        for logical, physical in enumerate(physical_of_logical[layer]):
            logical_of_physical[layer, physical] = logical
    records = []
    for pass_id, routing in enumerate(routings):
        t, _, k = routing["experts"].shape
        topk = torch.full((n_layers, t, 8), -1, dtype=torch.int32)
        for layer in routing["moe_layers"]:
            logical = routing["experts"][:, layer]
            topk[layer, :, :k] = torch.tensor(
                np.asarray(physical_of_logical[layer])[logical], dtype=torch.int32)
        records.append({"forward_pass_id": pass_id, "rank": rank, "gatherer_key": "primary",
                        "input_ids": list(routing["ids"]), "positions": list(range(t)),
                        "extend_seq_lens": [t], "forward_mode": 1, "topk_ids_of_layer": topk,
                        "misc_objects": []})
    torch.save({"records": records,
                "last_physical_to_logical_map": torch.tensor(logical_of_physical)}, path)
    return path


# -- Megatron-Core ------------------------------------------------------------------------
def megatron_trace(directory: Path, routings: list[dict], logits: bool = False, rank=0,
                   one_based: bool = False) -> Path:
    """One step per sequence; per routing layer one line with ascending top_indices."""
    directory.mkdir(parents=True, exist_ok=True)
    lines, sidecar, offset = [], bytearray(), 0
    for step, routing in enumerate(routings):
        for layer in routing["moe_layers"]:
            top = np.sort(routing["experts"][:, layer], axis=-1)
            record = {"step": step, "stage": "pre_dispatch", "block": "decoder",
                      "layer": layer + 1 if one_based else layer, "rank": rank,
                      "num_tokens": int(top.shape[0]), "topk": int(top.shape[1])}
            if one_based:
                record.pop("block")
            if logits:
                data = torch.tensor(routing["logits"][:, layer]).to(torch.bfloat16)
                raw = data.view(torch.int16).numpy().tobytes()
                record.update(logit_offset=offset, logit_bytes=len(raw),
                              logit_shape=list(data.shape))
                sidecar += raw
                offset += len(raw)
            record["top_indices"] = top.tolist()
            lines.append(json.dumps(record))
    (directory / f"router_trace_rank{rank}.jsonl").write_text("\n".join(lines) + "\n")
    if logits:
        (directory / f"logits_rank{rank}.bin").write_bytes(bytes(sidecar))
    return directory
