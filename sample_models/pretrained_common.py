"""What minilm-moe and dinov2-small share: the shipped expert split, building conditional
blocks from a pretrained layer's modules, and the runner's knob handling."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from routeviz.errors import RoutevizError
from routeviz.figures.labels import exit_label
from sample_models.conditional import Knobs, MoEFFN
from sample_models.pretrained_encoder import Attention, Block, ConditionalEncoder

WEIGHTS = Path(__file__).parent / "weights"
EXPERTS_FILE = "experts.safetensors"  # "layer.N" -> int16 [intermediate] expert id per neuron


def weights_dir(name: str) -> Path:
    return WEIGHTS / name


def save_expert_split(out_dir: Path, labels: list[torch.Tensor], info: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"layer.{i}": lab.to(torch.int16).contiguous() for i, lab in enumerate(labels)}
    save_file(tensors, str(out_dir / EXPERTS_FILE))
    (out_dir / "config.json").write_text(json.dumps(info, indent=2) + "\n")


def load_expert_split(name: str, n_layers: int) -> tuple[list[torch.Tensor], dict]:
    folder = weights_dir(name)
    path = folder / EXPERTS_FILE
    if not path.is_file():
        raise RoutevizError(f"{name}: no expert split at {path}; run "
                            f"`python -m sample_models.train {name}` to compute it")
    tensors = load_file(str(path))
    info = json.loads((folder / "config.json").read_text())
    labels = [tensors[f"layer.{i}"].to(torch.long) for i in range(n_layers)]
    return labels, info


def make_block(layer: int, q, k, v, o, n_heads, norm1, norm2, fc1, fc2, act, labels,
               n_experts, pre_norm, scale1=None, scale2=None) -> Block:
    return Block(layer, Attention(q, k, v, o, n_heads), norm1, norm2,
                 MoEFFN(fc1, fc2, act, labels, n_experts), pre_norm, scale1, scale2)


class KnobsMixin:
    """Runner side of the knobs: defaults, dense, overrides, and what a run records."""

    encoder: ConditionalEncoder
    n_experts: int
    default_knobs: Knobs

    def attach(self, name: str, hf_model, module_type, n_experts: int, defaults: Knobs,
               knobs: Knobs | None) -> None:
        """Wrap the loaded transformers model in `module_type` with its shipped expert split
        and put `knobs` (or the defaults) in force."""
        self.n_experts = n_experts
        labels, self.split_info = load_expert_split(name, hf_model.config.num_hidden_layers)
        self.module = module_type(hf_model, labels, n_experts).eval()
        self.encoder = self.module.encoder
        self.default_knobs = defaults
        self.set_knobs(knobs or defaults)

    @property
    def knobs(self) -> Knobs:
        return self.encoder.knobs

    @torch.no_grad()
    def predict(self, encoded) -> list[str]:
        """Per example: where it exited and the compute it used against the dense model."""
        out = self.module(**encoded.inputs)
        n_layers = len(self.encoder.layers)
        return [describe_compute(int(e), n_layers, float(m), float(dm))
                for e, m, dm in zip(out.exit_layer, out.macs, out.dense_macs)]

    def set_knobs(self, knobs: Knobs | None = None, **changes) -> Knobs:
        """Use `knobs` (or the current ones with `changes`); returns what is now in force."""
        knobs = replace(knobs or self.encoder.knobs, **changes)
        if not 1 <= knobs.top_k <= self.n_experts:
            raise RoutevizError(f"top_k {knobs.top_k}: choose 1..{self.n_experts}")
        if not 0 < knobs.keep_ratio <= 1:
            raise RoutevizError(f"keep_ratio {knobs.keep_ratio}: choose a value in (0, 1]")
        if knobs.router not in ("norm", "centroid"):
            raise RoutevizError(f"router {knobs.router!r}: choose norm, centroid")
        if knobs.merge_count < 0:
            raise RoutevizError("merge_count must be 0 or more")
        try:
            self.encoder.set_knobs(knobs)
        except ValueError as exc:
            raise RoutevizError(str(exc)) from None
        return knobs

    def dense(self) -> Knobs:
        """Every knob at dense: all experts, every token kept, no merge, no exit."""
        return self.set_knobs(self.encoder.knobs.dense(self.n_experts))

    def knob_config(self) -> dict:
        return {"n_layers": len(self.encoder.layers), "n_experts": self.n_experts,
                "top_k": self.knobs.top_k, "knobs": self.knobs.as_dict(),
                "dense": self.knobs == self.knobs.dense(self.n_experts)}


def describe_compute(exit_layer: int, n_layers: int, macs: float, dense_macs: float) -> str:
    return (f"exit at {exit_label(exit_layer, n_layers)}; "
            f"compute {macs / max(dense_macs, 1):.0%} of dense")
