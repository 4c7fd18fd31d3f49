"""Figures to files: HTML always; PNG and SVG through kaleido and a local Chromium.

Every figure that leaves the app (a file here, the report's figures) goes through
`standalone` first, so it looks the same whichever process builds it: inside Streamlit,
plotly's default template is Streamlit's, whose colours are placeholders only the app
replaces (#000001… draw black) and whose axes have no automargin (tick labels clipped).

kaleido's page asks a CDN for MathJax, which stalls with no network, so MathJax is turned
off for every export (the figures use no LaTeX).

One browser per process draws every image (`render_images`): the app's figure downloads
and the report's static figures share it, so only the first export pays for Chromium's
start (1-7 s on a loaded 2-core machine), and `warm_up` can pay it in the background
before the click. The browser runs on its own thread and event loop; every wait on it has
a limit: a Chromium that does not start within START_TIMEOUT_S is killed and the export
fails with one line (a failed start is remembered for RETRY_AFTER_S, so the next click
fails at once instead of waiting again), and a figure that does not draw within
RENDER_TIMEOUT_S fails alone.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import copy
import functools
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from routeviz.errors import RoutevizError, choose

TEMPLATE = "plotly_white"  # named, never the process default (see above)
FORMATS = ("html", "png", "svg")
MIME = {"html": "text/html", "png": "image/png", "svg": "image/svg+xml"}
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
START_TIMEOUT_S = 20.0  # Chromium's start; 1-7 s seen on a loaded 2-core machine
RENDER_TIMEOUT_S = 60.0  # one figure
RETRY_AFTER_S = 60.0  # a failed start is not retried before this
RELOAD_EVERY = 25  # figures drawn in one page before it is loaded afresh


def chromium_path() -> str | None:
    """The browser kaleido would use, or None when none is installed. BROWSER_PATH (the
    variable kaleido and choreographer read) names one explicitly; None if it is missing."""
    explicit = os.environ.get("BROWSER_PATH")
    if explicit:
        return explicit if Path(explicit).exists() else None
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
    spec = (fig if isinstance(fig, go.Figure) else go.Figure(fig)).to_plotly_json()  # a copy
    spec["layout"].pop("template", None)  # replaced below
    # only the layout goes through plotly's validators again, which put its keys in their
    # own order (the JSON, and so the report's bytes, as before); the traces were
    # validated when the figure was built and come out of it unchanged; validating them
    # again, and the template, cost ~0.05 s a figure (19 figures: 0.7-0.9 CPU-s a report)
    layout = go.Layout(spec["layout"]).to_plotly_json()
    out = go.Figure({"data": spec["data"], "layout": layout}, _validate=False)
    out.update_xaxes(automargin=True)
    out.update_yaxes(automargin=True)
    spec = out.to_plotly_json()
    spec["layout"]["template"] = copy.deepcopy(_template_json())  # the figure may change it
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
        [image] = render_images([(fig, opts)])
    except RoutevizError as exc:
        raise RoutevizError(f"{fmt.upper()} export failed: {exc}") from None
    if isinstance(image, Exception):
        raise RoutevizError(f"{fmt.upper()} export failed: {_first_line(image)}")
    return image


def render_images(items: list[tuple[object, dict]], timeout: float | None = None,
                  then=None) -> list[bytes | Exception]:
    """Draw [(figure, kaleido opts)] in the process's browser, in order, in one call: the
    image bytes of each (passed through `then` if given, on a worker thread while the next
    figure draws), or the exception of one that failed. Raises RoutevizError (one line)
    when there is no Chromium, it does not start, or the whole call takes over `timeout` s
    (default: the start's limit plus each figure's)."""
    return submit_images(items, then).result_within(
        timeout if timeout is not None else START_TIMEOUT_S + RENDER_TIMEOUT_S * len(items))


def submit_images(items: list[tuple[object, dict]], then=None) -> PendingImages:
    """`render_images` started, not waited for: the caller's thread is free while
    Chromium draws (the report writes its HTML meanwhile)."""
    return PendingImages(_BROWSER.submit(items, then))


def warm_up() -> None:
    """Start the process's browser in the background, if Chromium is installed and it is
    not running yet; never waits and never raises (the Export page calls it on open)."""
    if chromium_path() is not None:
        _BROWSER.warm_up()


class PendingImages:
    """Images being drawn: `result_within(s)` waits at most s seconds for them."""

    def __init__(self, future: concurrent.futures.Future):
        self._future = future

    def result_within(self, timeout: float) -> list[bytes | Exception]:
        try:
            return self._future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            self._future.cancel()
            _BROWSER.restart_later()  # a browser stuck past every limit is not reused
            raise RoutevizError(f"Chromium did not answer within {timeout:.0f} s") from None
        except RoutevizError:
            raise
        except Exception as exc:  # noqa: BLE001 — kaleido/choreographer errors, one line
            raise RoutevizError(_first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    text = first.strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _kaleido_class():
    import kaleido

    class KeptPageKaleido(kaleido.Kaleido):
        """kaleido loads its page (plotly.js, 4.8 MB) afresh after every figure, which
        took about half of each figure's time; here the page is loaded afresh after
        RELOAD_EVERY figures or after one that failed. Each figure is drawn in its own
        element by Plotly.toImage either way: the same PNG bytes (tests compare them)."""

        drawn = 0
        stale = False

        async def _get_kaleido_tab(self):
            tab = await super()._get_kaleido_tab()
            if self.stale:
                await tab.reload()
                self.stale, self.drawn = False, 0
            return tab

        async def _return_kaleido_tab(self, tab):
            self.drawn += 1
            self.stale = self.stale or self.drawn >= RELOAD_EVERY
            await self.tabs_ready.put(tab)

        async def _render_task(self, *args, **kwargs):
            try:
                return await super()._render_task(*args, **kwargs)
            except BaseException:
                self.stale = True
                raise

    return KeptPageKaleido


class _Browser:
    """The process's one kaleido browser, on a thread of its own running an event loop.

    Everything that touches kaleido runs on that loop, so the state below changes only
    there, between awaits; callers only submit coroutines and wait on futures."""

    def __init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._kaleido = None  # the open browser
        self._path: str | None = None  # the executable it runs
        self._opening: asyncio.Future | None = None  # a start in progress
        self._failed: tuple[float, str, str] | None = None  # (when, path, why) of a failed start

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="routeviz-chromium",
                                 daemon=True).start()
                atexit.register(self.close)
            return self._loop

    def submit(self, items, then=None) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(self._render(items, then), self._get_loop())

    def warm_up(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self._browser(), self._get_loop())
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen, not raised

    def restart_later(self) -> None:
        """Close the browser; the next export starts a new one."""
        asyncio.run_coroutine_threadsafe(self._discard(), self._get_loop())

    def close(self, timeout: float = 5.0) -> None:
        if self._loop is None or not self._loop.is_running():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._discard(), self._loop).result(timeout)

    async def _render(self, items, then=None) -> list[bytes | Exception]:
        k = await self._browser()
        loop = asyncio.get_running_loop()
        images: list = []  # bytes, an exception, or `then` running on a worker thread
        for fig, opts in items:
            try:
                image = await k.calc_fig(fig, opts=opts)
                images.append(loop.run_in_executor(None, then, image) if then else image)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — one figure fails, not the rest
                images.append(exc)
                if await k._is_closed():  # the browser itself died
                    await self._discard()
                    k = await self._browser()
        for i, image in enumerate(images):
            if isinstance(image, asyncio.Future):
                try:
                    images[i] = await image
                except Exception as exc:  # noqa: BLE001
                    images[i] = exc
        return images

    async def _browser(self):
        """The open browser, started (once, whoever asks first) if need be."""
        path = chromium_path()
        if path is None:
            raise RoutevizError("needs Chromium (not installed here); download HTML instead")
        if self._kaleido is not None and self._path == path:
            return self._kaleido
        if self._failed and self._failed[1] == path \
                and time.monotonic() - self._failed[0] < RETRY_AFTER_S:
            raise RoutevizError(self._failed[2])
        if self._opening is None or self._path != path:
            await self._discard()
            self._path = path
            self._opening = asyncio.ensure_future(self._start(path))
        opening = self._opening
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    async def _start(self, path: str):
        k = None
        try:
            k = _kaleido_class()(n=1, mathjax=False, timeout=RENDER_TIMEOUT_S, path=path)
            opening = asyncio.ensure_future(k.open())
            done, _ = await asyncio.wait({opening}, timeout=START_TIMEOUT_S)
            if not done:
                opening.add_done_callback(lambda f: f.cancelled() or f.exception())
                raise TimeoutError
            opening.result()
        except BaseException as exc:
            why = (f"Chromium ({path}) did not start within {START_TIMEOUT_S:.0f} s"
                   if isinstance(exc, TimeoutError)
                   else f"Chromium ({path}) failed to start: {_first_line(exc)}")
            self._failed = (time.monotonic(), path, why)
            if k is not None:
                await _kill(k, first=True)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise RoutevizError(why) from None
        self._kaleido, self._failed = k, None
        return k

    async def _discard(self) -> None:
        k, self._kaleido = self._kaleido, None
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        self._opening = None
        if k is not None:
            await _kill(k)


async def _kill(k, first: bool = False) -> None:
    """Close a kaleido browser (its page's temporary folder too), killing its process
    first (`first`: a browser that failed to start has nothing to close gracefully) or
    when it does not close within 5 s."""
    process = getattr(k, "subprocess", None)

    def kill():  # the wrapper choreographer starts leads a session: Chromium and its helpers
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()

    if first:
        kill()
    closing = asyncio.ensure_future(k.close())
    await asyncio.wait({closing}, timeout=5)
    if closing.done():
        closing.cancelled() or closing.exception()  # seen, not raised
    kill()
    if process is not None:  # reaped, not left a zombie
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(None, process.wait, 5)


_BROWSER = _Browser()
