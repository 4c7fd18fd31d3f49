"""Shared fixtures for the dashboard's AppTests: a store built here with the toy models, the
toy models made pickable in the app, and a helper that opens one page."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from routeviz.runs.inputs import Item
from routeviz.runs.record import record
from tests.app_toys import load, toy_dataset
from tests.plugin_dist import write_distribution

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def png_bytes(width=40, height=30, seed=0, fmt="PNG") -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = (rng.random((height, width, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def install_toys(directory) -> None:
    """Write the toy models and dataset into `directory` as an installed distribution's
    entry points (put `directory` on sys.path to install it)."""
    write_distribution(directory, "routeviz-test-toys", {
        "routeviz.models": {"toys": "tests.app_toys:TOY_MODELS"},
        "routeviz.datasets": {"toy-words": "tests.app_toys:TOY_WORDS"}})


@pytest.fixture
def toy_models(tmp_path_factory, monkeypatch):
    """The toy models (and a toy dataset) installed, through entry points, while a test runs."""
    directory = tmp_path_factory.mktemp("toy-plugin")
    install_toys(directory)
    monkeypatch.setattr(sys, "path", [*sys.path, str(directory)])  # listed after the samples


@pytest.fixture(scope="session")
def app_store(tmp_path_factory):
    """A store with a tagged text run (toy-words), a second text run over the same texts
    (for Compare), and an image run of two images."""
    path = tmp_path_factory.getbasetemp() / "app-store"  # one per session, whichever module asks
    if (path / "built").exists():
        return path
    items = toy_dataset()
    record(load("toy-text"), items, path, "words", batch_size=4)
    record(load("toy-long"), items, path, "words-b", batch_size=8)
    from PIL import Image

    images = [Item(image=Image.open(io.BytesIO(png_bytes(seed=s))).convert("RGB"),
                   source=f"img{s}.png", tags={"shade": "dark" if s else "light"})
              for s in range(2)]
    record(load("toy-image"), images, path, "pictures")
    (path / "built").touch()
    return path


def open_page(store, page: str | None = None, run: str | None = None, timeout: float = 60):
    """An AppTest of the whole app on `store`, switched to app_pages/<page>.py."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["store_path"] = str(store)
    if run is not None:
        at.session_state["run"] = run
    at.run()
    if page is not None:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def htmls(at) -> list[str]:
    return [el.proto.body for el in at.get("html")]


def _decode(value):
    """Plotly JSON with typed arrays ({dtype, bdata, shape}) turned back into lists."""
    import base64

    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            if value.get("shape"):
                arr = arr.reshape([int(n) for n in str(value["shape"]).split(",")])
            return arr.tolist()
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def plotly_specs(at) -> list:
    """The figures on the page, as plotly JSON (typed arrays decoded; NaN stays NaN)."""
    import json

    return [_decode(json.loads(el.proto.spec)) for el in at.get("plotly_chart")]


def values(matrix) -> list:
    """The non-NaN numbers of a nested list."""
    flat = np.asarray(matrix, dtype=float).ravel()
    return flat[~np.isnan(flat)].tolist()


def open_panel(store, module: str, function: str, run: str, timeout: float = 120,
               state: dict | None = None):
    """Run one Inspect panel alone (`app_pages.<module>.<function>(handle, run, example 0)`)
    on `store` in an AppTest; fails on any exception the page raised."""
    from streamlit.testing.v1 import AppTest

    script = ("import streamlit as st\n"
              "from app_pages.common import get_handle\n"
              f"from app_pages.{module} import {function}\n"
              f"{function}(get_handle(), st.session_state['panel_run'], 0)\n")
    at = AppTest.from_string(script, default_timeout=timeout)
    at.session_state["store_path"] = str(store)
    at.session_state["panel_run"] = run
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
