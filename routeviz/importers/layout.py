"""Which layers of a model route, and the site name `routeviz trace` gives each router.

`Layout.from_checkpoint(dir)` builds the model from its config on the meta device (no
weights read, no memory) and asks `routeviz.capture.sites.find_sites` for its routers: the
very code path a trace takes, so an imported row's site is the traced row's site. A family
that cannot be built that way falls back to the config's own fields (`mlp_only_layers`,
`decoder_sparse_step`, `first_k_dense_replace`, `moe_layer_freq`) and the Mixtral-style name
`model.layers.{i}.mlp.gate`. Without a checkpoint (`Layout.bare`), every layer of the axis
routes and is named `layers.{i}`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from routeviz.errors import RoutevizError


@dataclass
class Layout:
    n_layers: int | None  # decoder layers of the model; None without a checkpoint
    moe_layers: list  # model layers that route, in order
    sites: dict  # model layer -> site name
    n_experts: int | None = None
    top_k: int | None = None
    tokenizer: object = None
    facts: dict = field(default_factory=dict)  # model_type, checkpoint, how sites were found

    @classmethod
    def bare(cls, n_axis: int) -> Layout:
        return cls(None, list(range(n_axis)), {i: f"layers.{i}" for i in range(n_axis)})

    @classmethod
    def from_checkpoint(cls, path) -> Layout:
        path = Path(path).expanduser()
        config = _config(path)
        n_layers = int(getattr(config, "num_hidden_layers", 0) or 0)
        if n_layers < 1:
            raise RoutevizError(f"{str(path)!r}: the config names no num_hidden_layers")
        sites, how = _traced_sites(config)
        if sites is None:
            moe = moe_layers_from_config(config)
            sites = {layer: f"model.layers.{layer}.mlp.gate" for layer in moe}
        n_experts = (getattr(config, "num_local_experts", None)
                     or getattr(config, "num_experts", None)
                     or getattr(config, "n_routed_experts", None))
        top_k = getattr(config, "num_experts_per_tok", None) or getattr(config, "moe_topk", None)
        return cls(n_layers, sorted(sites), sites,
                   int(n_experts) if n_experts else None, int(top_k) if top_k else None,
                   _tokenizer(path),
                   {"model_type": getattr(config, "model_type", None), "checkpoint": str(path),
                    "sites_from": how})

    def axis_layers(self, n_axis: int, where: str) -> list:
        """The model layer of each entry of a layer axis `n_axis` long; None where the entry
        is a dense layer (its rows are dropped). The axis counts every layer or only the
        routing ones; anything else fits no layout and is refused."""
        if self.n_layers is None:
            if n_axis != len(self.moe_layers):
                raise RoutevizError(f"{where}: {n_axis} layers, but the other arrays have "
                                    f"{len(self.moe_layers)}")
            return list(self.moe_layers)
        if n_axis == self.n_layers:
            routing = set(self.moe_layers)
            return [layer if layer in routing else None for layer in range(n_axis)]
        if n_axis == len(self.moe_layers):
            return list(self.moe_layers)
        raise RoutevizError(
            f"{where}: the layer axis has {n_axis} entries, which fits no layout of the model "
            f"({self.n_layers} layers, {len(self.moe_layers)} of them routing: "
            f"{_short(self.moe_layers)})")

    def decode(self, ids) -> list | None:
        """Each id's text as `routeviz trace` writes it (one decode per token), or None."""
        if self.tokenizer is None:
            return None
        return [self.tokenizer.decode([int(i)]) for i in ids]


def moe_layers_from_config(config) -> list:
    """The routing layers a transformers config describes (families that mix dense layers
    in say so with these fields; without them every layer routes)."""
    n = int(config.num_hidden_layers)
    dense = set(getattr(config, "mlp_only_layers", None) or [])
    step = int(getattr(config, "decoder_sparse_step", 1) or 1)
    first_dense = int(getattr(config, "first_k_dense_replace", 0) or 0)
    freq = int(getattr(config, "moe_layer_freq", 1) or 1)
    return [i for i in range(n)
            if i not in dense and (i + 1) % step == 0 and i >= first_dense and i % freq == 0]


def _config(path: Path):
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config_file = path / "config.json"
    if not config_file.is_file():
        raise RoutevizError(f"--model {str(path)!r} is not a transformers checkpoint "
                            "(no config.json)")
    try:
        raw = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise RoutevizError(f"{config_file}: unreadable config.json ({exc})") from None
    if isinstance(raw, dict) and raw.get("auto_map"):
        raise RoutevizError(f"{str(path)!r} ships its own model code (auto_map); the importer "
                            "does not run it")
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 — transformers raises many types for a bad config
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RoutevizError(f"{str(path)!r}: cannot read the config ({first[:200]})") from None
    return getattr(config, "text_config", None) if _is_wrapper(config) else config


def _is_wrapper(config) -> bool:
    return getattr(config, "num_hidden_layers", None) is None and hasattr(config, "text_config")


def _traced_sites(config) -> tuple[dict | None, str]:
    """{layer: site} of the expert routers `find_sites` finds in the model built on the meta
    device, or (None, why) where the model cannot be built there."""
    import torch
    from transformers import AutoModelForCausalLM

    from routeviz.capture.sites import find_sites
    from routeviz.errors import NoRoutingModules

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_config(config)
        found = find_sites(model)
    except NoRoutingModules:  # routeviz cannot trace this family: the config's fields decide
        return None, "config fields"
    except Exception:  # noqa: BLE001 — a family that will not build on meta: config fields decide
        return None, "config fields"
    sites = {}
    for site in found:
        if "n_experts" in site.describe() or "top_k" in site.describe():
            sites.setdefault(site.layer, site.name)
    return (sites, "traced sites") if sites else (None, "config fields")


def _tokenizer(path: Path):
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    except Exception:  # noqa: BLE001 — a checkpoint without a tokenizer still gives the layout
        return None


def _short(values, limit: int = 12) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (" ..." if len(values) > limit else "")
