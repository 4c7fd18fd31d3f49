"""Figures to files: HTML always; PNG and SVG through kaleido and a local Chromium.

Every figure that leaves the app (a file here, the report's figures) goes through
`standalone` first, so it looks the same whichever process builds it: inside Streamlit,
plotly's default template is Streamlit's, whose colours are placeholders only the app
replaces (#000001… draw black) and whose axes have no automargin (tick labels clipped).

kaleido's page asks a CDN for MathJax, which stalls with no network, so MathJax is turned
off for every export (the figures use no LaTeX).
"""

from __future__ import annotations

import atexit
import copy
import functools
import shutil
import threading
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from routeviz.errors import RoutevizError, choose

TEMPLATE = "plotly_white"  # named, never the process default (see above)
FORMATS = ("html", "png", "svg")
MIME = {"html": "text/html", "png": "image/png", "svg": "image/svg+xml"}
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def chromium_path() -> str | None:
    """The browser kaleido would use, or None when none is installed."""
    for path in CHROMIUM_PATHS:
        if Path(path).exists():
            return path
    return shutil.which("chromium") or shutil.which("google-chrome")


def available_formats() -> tuple[str, ...]:
    return FORMATS if chromium_path() else ("html",)


def standalone(fig) -> go.Figure:
    """A copy of `fig` as drawn outside the app: plotly's own white template (set by name,
    not taken from the process default) and automargin on every axis, so tick labels and
    axis titles push the margins out instead of falling outside the figure."""
    out = go.Figure(fig)
    out.update_xaxes(automargin=True)
    out.update_yaxes(automargin=True)
    spec = out.to_plotly_json()
    spec["layout"]["template"] = copy.deepcopy(_template_json())  # the figure may change it
    # the template is plotly's own, already valid: assigning it through the validators cost
    # ~0.5 s a figure (19 figures: 9 s of a report); the JSON is the same either way
    return go.Figure(spec, _validate=False)


@functools.lru_cache(maxsize=1)
def _template_json() -> dict:
    return pio.templates[TEMPLATE].to_plotly_json()


def figure_bytes(fig, fmt: str, width: int | None = None, height: int | None = None) -> bytes:
    """`fig` as a self-contained HTML page, or a PNG/SVG image (through `standalone`)."""
    fmt = choose("format", fmt, FORMATS)
    fig = standalone(fig)
    if fmt == "html":
        return fig.to_html(full_html=True, include_plotlyjs=True,
                           default_height=f"{height or fig.layout.height or 500}px").encode()
    if chromium_path() is None:
        raise RoutevizError(f"{fmt.upper()} export needs Chromium (not installed here); "
                            "download HTML instead")
    opts = {"format": fmt, "width": width or fig.layout.width or 1000,
            "height": height or fig.layout.height or 500}
    try:
        return _render(fig, opts)
    except Exception as exc:  # noqa: BLE001 — a browser that fails to start, a render error
        text = str(exc).strip().splitlines()
        raise RoutevizError(f"{fmt.upper()} export failed: {text[0] if text else type(exc).__name__}") from None


_SERVER_LOCK = threading.Lock()  # one figure at a time through the one browser
_server_started = False


def _render(fig, opts: dict) -> bytes:
    """One image through kaleido's sync server: its browser starts on the first export and
    stays for the process (a browser per figure cost ~5 s each; with it kept, a second
    figure takes about a second on a loaded 2-core machine: benchmarks/export_speed.py)."""
    import kaleido

    global _server_started
    with _SERVER_LOCK:
        if not _server_started:
            kaleido.start_sync_server(n=1, mathjax=False, timeout=60, silence_warnings=True)
            atexit.register(kaleido.stop_sync_server, silence_warnings=True)
            _server_started = True
        try:
            return kaleido.calc_fig_sync(fig, opts=opts)
        except Exception:
            kaleido.stop_sync_server(silence_warnings=True)  # the next export starts afresh
            _server_started = False
            raise
