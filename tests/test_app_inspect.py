"""Inspect page: typed text, uploaded text and images, long inputs, bad uploads."""

import re

from tests import app_support
from tests.app_support import htmls, open_page, plotly_specs, png_bytes, values

toy_models = app_support.toy_models  # shared fixture

SCRIPT = "<script>alert(1)</script>"


def run_text(at, text, model="toy-text"):
    at.selectbox(key="inspect_model").set_value(model)
    at.text_area(key="inspect_text").set_value(text)
    return at.button(key="inspect_go").click().run()


def upload(at, name, data, mime, model):
    at.selectbox(key="inspect_model").set_value(model)
    at.file_uploader(key="inspect_upload").set_value((name, data, mime))
    return at.button(key="inspect_go").click().run()


def chips(at) -> list[str]:
    body = next(h for h in htmls(at) if 'class="rv-chips"' in h)
    return re.findall(r'<span class="rv-chip"[^>]*>(.*?)</span>', body)


def test_typed_text_shows_escaped_chips_and_heatmap(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    run_text(at, f"def f ( x ) : return {SCRIPT} x")
    assert not at.exception and not at.error
    words = chips(at)
    assert len(words) == 9
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in words
    assert all("<script" not in h for h in htmls(at))  # never raw HTML from the text
    figs = {el.proto.id: el for el in at.get("plotly_chart")}
    assert any("inspect_heatmap" in key for key in figs)
    heat = plotly_specs(at)[0]["data"][0]
    assert heat["type"] == "heatmap" and len(heat["z"]) == 2  # two expert sites
    assert len(heat["z"][0]) == 9  # one column per token
    assert "e" in htmls(at)[0]  # the expert legend
    layer = at.select_slider(key="inspect_site")
    assert len(layer.options) == 2
    assert at.code[0].value.startswith("next id")  # the model's output


def test_heatmap_modes_cover_every_routing_kind(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    run_text(at, "a b c d e f")
    box = at.selectbox(key="inspect_heatmap_value")
    assert box.options == ["top-1 expert", "top-1 gate weight", "kept / dropped / merged",
                           "computed (until its exit layer)"]
    box.set_value("kept").run()
    heat = plotly_specs(at)[0]["data"][0]
    assert set(values(heat["z"])) == {0, 1}


def test_uploaded_text_file(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    upload(at, "notes.md", b"# title\nsome words here", "text/markdown", "toy-text")
    assert not at.error
    assert chips(at) == ["#", "title", "some", "words", "here"]


def test_uploaded_png_shows_patch_overlay_kept_and_exit(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    upload(at, "photo.png", png_bytes(), "image/png", "toy-image")
    assert not at.exception and not at.error, [e.value for e in at.error]
    figs = plotly_specs(at)
    overlay = figs[0]["data"]
    assert overlay[0]["type"] == "image"
    assert overlay[1]["type"] == "heatmap" and len(overlay[1]["z"]) == 4  # 4×4 patch grid
    kept = figs[1]["data"]
    assert all(trace["type"] == "heatmap" for trace in kept) and len(kept) == 1
    flat = values(kept[0]["z"])
    assert flat.count(1) == 8 and flat.count(0) == 8  # EViT keeps half of 16 patches
    assert at.metric[0].label == "Exit depth"
    assert at.code[0].value.startswith("class ")


def test_long_text_runs_in_windows_of_the_context_and_pages_the_heatmap(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    run_text(at, " ".join(f"w{i}" for i in range(20_000)), model="toy-long")
    assert not at.error
    notes = " ".join(i.value for i in at.info)
    # toy-long's context is 5,000 tokens: windows of 4,999 words (a full one may be cut)
    assert "ran as 5 consecutive windows, examples 0–4" in notes
    assert "truncated" not in notes
    assert "first 2,000 of 4,999 tokens" in notes
    assert len(chips(at)) == 2000 and chips(at)[0] == "w0"
    assert at.number_input(key="inspect_example").max == 4
    page = at.selectbox(key="inspect_heatmap_page")
    assert page.value == "tokens 0–79" and page.options[-1] == "all tokens (binned)"
    heat = plotly_specs(at)[0]
    assert len(heat["data"][0]["z"][0]) == 80  # one labelled column per token on a page
    page.set_value("all tokens (binned)").run()
    heat = plotly_specs(at)[0]
    assert len(heat["data"][0]["z"][0]) <= 80 and "aggregated" in heat["layout"]["title"]["text"]
    at.number_input(key="inspect_example").set_value(4).run()
    assert chips(at) == ["w19996", "w19997", "w19998", "w19999"]  # the text's end, not dropped


def test_large_photo_is_downscaled_for_display(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    upload(at, "big.jpg", png_bytes(4000, 3000, fmt="JPEG"), "image/jpeg", "toy-image")
    assert not at.error
    assert any("4000×3000" in i.value for i in at.info)
    overlay = plotly_specs(at)[0]
    assert overlay["layout"]["xaxis"]["range"][1] <= 512


def test_bad_uploads_show_one_line_errors_and_the_app_keeps_running(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    cases = [
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "image/png", "toy-image"),
        ("liar.png", b"just some text, not an image", "image/png", "toy-image"),
        ("empty.txt", b"", "text/plain", "toy-text"),
        ("binary.txt", b"\x00\x01\x02abc", "text/plain", "toy-text"),
    ]
    for name, data, mime, model in cases:
        upload(at, name, data, mime, model)
        assert not at.exception
        assert len(at.error) == 1 and name in at.error[0].value, (name, [e.value for e in at.error])
        assert "\n" not in at.error[0].value
    at.file_uploader(key="inspect_upload").set_value(None)
    run_text(at, "still works")
    assert not at.error and len(chips(at)) == 2


def test_unknown_checkpoint_and_wrong_modality(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    at.selectbox(key="inspect_model").set_value("Local checkpoint directory…").run()
    at.text_input(key="inspect_checkpoint").set_value(str(tmp_path / "nope"))
    at.text_area(key="inspect_text").set_value("hello")
    at.button(key="inspect_go").click().run()
    assert "unknown model" in at.error[0].value
    upload(at, "photo.png", png_bytes(), "image/png", "toy-text")
    assert "takes text input" in at.error[0].value


def test_local_checkpoint_directory(tmp_path, mixtral_dir):
    at = open_page(tmp_path / "store", "inspect")
    at.selectbox(key="inspect_model").set_value("Local checkpoint directory…").run()
    at.text_input(key="inspect_checkpoint").set_value(str(mixtral_dir))
    at.text_area(key="inspect_text").set_value("the model is a token")
    at.button(key="inspect_go").click().run()
    assert not at.error and not at.exception
    assert chips(at) == ["the", "model", "is", "a", "token"]
    assert at.code[0].value.startswith("next token:")


def test_windows_of_one_text_are_capped_and_the_rest_named(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    text = " ".join(f"w{i}" for i in range(63 * 70))  # 70 windows of toy-text's 63 words
    run_text(at, text)
    notes = " ".join(i.value for i in at.info)
    assert "ran as 64 consecutive windows, examples 0–63" in notes
    covered = len(" ".join(f"w{i}" for i in range(63 * 64))) + 1  # through the last space
    assert f"first {covered:,} of {len(text):,} characters; the rest was not run" in notes
    assert at.number_input(key="inspect_example").max == 63
