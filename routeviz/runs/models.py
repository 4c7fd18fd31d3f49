"""Models routeviz can run: installed models by name, or a local transformers checkpoint.

Named models come from the `routeviz.models` entry-point group (`routeviz.plugins.ModelSpec`:
the sample models and any third-party package's). A `ModelRunner` wraps a module with what
tracing needs: how to turn Items into model inputs plus token strings and tags (`encode`),
and how to run them and name the output per example (`predict`). The CLI, the app and the dataset tracer all go through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from routeviz.errors import RoutevizError
from routeviz.plugins import ModelSpec, model_specs


@dataclass
class Encoded:
    """A batch ready for the model: inputs plus, per example, tokens, tags and meta."""

    inputs: dict
    tokens: list  # [example][token] -> str
    tags: list  # [example] -> {name: value or [value per token]}
    meta: list  # [example] -> {modality, source, label, image, grid_h, grid_w, patch}
    notes: list = field(default_factory=list)  # e.g. "truncated to 512 tokens"


class ModelRunner:
    spec: ModelSpec | None = None  # a named model's metadata (its one source): set by the
    # runner class or by `load_model`; modality, routing and datasets are read from it
    name: str = ""
    max_tokens: int = 512
    module: torch.nn.Module

    @property
    def modality(self) -> str:  # "text" or "image"
        return self.spec.modality if self.spec else "text"

    @property
    def routing(self) -> tuple:  # kinds of routing the model makes: expert, keep, exit, merge
        return tuple(self.spec.routing) if self.spec else ()

    @property
    def datasets(self) -> tuple:  # datasets that suit it
        return tuple(self.spec.datasets) if self.spec else ()

    @property
    def description(self) -> str:  # the spec's, unless the runner sets a longer one
        return vars(self).get("_description") or (self.spec.description if self.spec else "")

    @description.setter
    def description(self, text: str) -> None:
        self._description = text

    def encode(self, items) -> Encoded:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, encoded: Encoded) -> list[str]:
        raise NotImplementedError

    def trace_config(self) -> dict:
        """Saved with each run (runs.config): enough to know what produced the routes."""
        return {"model": self.name, "modality": self.modality, "routing": list(self.routing)}


class HFTextRunner(ModelRunner):
    """A local transformers checkpoint directory (model + tokenizer from save_pretrained)."""

    modality = "text"

    def __init__(self, path: Path, trust_remote_code: bool = False):
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        self.path = path
        config_file = path / "config.json"
        if not config_file.is_file():
            raise RoutevizError(f"{str(path)!r} is not a transformers checkpoint (no config.json)")
        try:
            raw = json.loads(config_file.read_text())
        except (OSError, ValueError) as exc:
            raise RoutevizError(f"{config_file}: unreadable config.json ({exc})") from None
        if raw.get("auto_map") and not trust_remote_code:
            raise RoutevizError(
                f"{str(path)!r} ships its own model code (auto_map in config.json); it is not "
                "run unless you pass --trust-remote-code")
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        except Exception as exc:
            raise RoutevizError(f"{str(path)!r}: cannot read the config ({_first_line(exc)})") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except Exception as exc:
            raise RoutevizError(f"{str(path)!r}: no usable tokenizer ({_first_line(exc)})") from None
        self.causal = False
        try:
            self.module = AutoModelForCausalLM.from_pretrained(
                path, config=config, trust_remote_code=trust_remote_code)
            self.causal = True
        except Exception:
            try:
                self.module = AutoModel.from_pretrained(
                    path, config=config, trust_remote_code=trust_remote_code)
            except Exception as exc:
                raise RoutevizError(f"{str(path)!r}: cannot load the model ({_first_line(exc)})") from None
        if getattr(config, "is_encoder_decoder", False):
            # e.g. Switch Transformers: trace the encoder, which routes the input's tokens
            # (the decoder would need target tokens we do not have)
            self.module = self.module.get_encoder()
            self.causal = False
        self.module.eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.name = path.name
        self.config = config
        limit = getattr(config, "max_position_embeddings", None) or 512
        self.max_tokens = int(min(limit, 512))
        self.description = f"transformers checkpoint {config.model_type} at {path}"

    def encode(self, items) -> Encoded:
        texts = [item.text for item in items]
        if any(t is None for t in texts):
            raise RoutevizError(f"{self.name} is a text model; it cannot take an image")
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt")
        tokens, notes = [], []
        for i, item in enumerate(items):
            ids = enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist()
            tokens.append([self.tokenizer.decode([t]) for t in ids])
            full = len(self.tokenizer(item.text)["input_ids"])
            if full > len(ids):
                notes.append(f"{item.source or 'text'}: truncated to {len(ids)} of {full} tokens")
        meta = [{"modality": "text", "source": item.source or item.text[:200],
                 "label": item.label} for item in items]
        tags = [dict(item.tags) for item in items]
        return Encoded(inputs=dict(enc), tokens=tokens, tags=tags, meta=meta, notes=notes)

    def trace_config(self) -> dict:
        cfg = self.config
        n_experts = (getattr(cfg, "num_local_experts", None) or getattr(cfg, "num_experts", None)
                     or getattr(cfg, "n_routed_experts", None))
        top_k = getattr(cfg, "num_experts_per_tok", None) or getattr(cfg, "moe_topk", None)
        return {**super().trace_config(), "model_type": cfg.model_type, "checkpoint": str(self.path),
                "n_layers": getattr(cfg, "num_hidden_layers", None),
                "n_experts": n_experts, "top_k": top_k}

    @torch.no_grad()
    def predict(self, encoded: Encoded) -> list[str]:
        out = self.module(**encoded.inputs)
        if not self.causal:
            return [None] * len(encoded.tokens)
        mask = encoded.inputs["attention_mask"]
        last = mask.sum(dim=1) - 1
        if self.tokenizer.padding_side == "left":
            last = torch.full_like(last, mask.shape[1] - 1)
        logits = out.logits[torch.arange(len(last)), last]
        return [f"next token: {self.tokenizer.decode([int(i)])!r}" for i in logits.argmax(-1)]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def list_models() -> list[dict]:
    """The installed models and what they route (for `routeviz models`)."""
    return [spec.info() for spec in model_specs().values()]


def load_model(name_or_dir: str, trust_remote_code: bool = False) -> ModelRunner:
    """An installed model by name, or a transformers checkpoint directory by path."""
    specs = model_specs()
    if name_or_dir in specs:
        return _runner_for(specs[name_or_dir])
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return HFTextRunner(path, trust_remote_code=trust_remote_code)
    if path.exists():
        raise RoutevizError(f"{name_or_dir!r} is a file; --model takes a model name or "
                            "a checkpoint directory")
    names = ", ".join(sorted(specs)) or "(none installed)"
    raise RoutevizError(f"unknown model {name_or_dir!r}: not an installed model ({names}) "
                        "and no such directory")


def _runner_for(spec: ModelSpec) -> ModelRunner:
    runner = spec.load(spec.name)
    runner.spec = spec
    runner.name = spec.name
    return runner
