"""Figures to files: HTML always; PNG and SVG through kaleido and a local Chromium.

kaleido's page asks a CDN for MathJax, which stalls with no network, so MathJax is turned
off for every export (the figures use no LaTeX).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from routeviz.errors import RoutevizError, choose

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


def figure_bytes(fig, fmt: str, width: int | None = None, height: int | None = None) -> bytes:
    """`fig` as a self-contained HTML page, or a PNG/SVG image."""
    fmt = choose("format", fmt, FORMATS)
    if fmt == "html":
        return fig.to_html(full_html=True, include_plotlyjs=True,
                           default_height=f"{height or fig.layout.height or 500}px").encode()
    if chromium_path() is None:
        raise RoutevizError(f"{fmt.upper()} export needs Chromium (not installed here); "
                            "download HTML instead")
    import kaleido

    opts = {"format": fmt, "width": width or fig.layout.width or 1000,
            "height": height or fig.layout.height or 500}
    try:
        return kaleido.calc_fig_sync(fig, opts=opts, kopts={"mathjax": False})
    except Exception as exc:  # noqa: BLE001 — a browser that fails to start, a render error
        text = str(exc).strip().splitlines()
        raise RoutevizError(f"{fmt.upper()} export failed: {text[0] if text else type(exc).__name__}") from None
