"""Static copies of the report's figures for report.md: PNG through kaleido and the local
Chromium (one browser for all figures, MathJax off so nothing asks the network), and a
contact sheet of each image gallery drawn with PIL.

A report never fails because a static copy failed: `export_pngs` returns what it managed
and a note saying what it did not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io

from routeviz.report.gallery import CROP_PX, Gallery

EXPORT_TIMEOUT_S = 240  # all figures together
WIDTH = 1000


def export_pngs(plots) -> tuple[dict[str, bytes], str | None]:
    """{plot key: PNG bytes} for as many plots as kaleido renders, and a note or None."""
    from routeviz.figures.export import chromium_path

    if not plots:
        return {}, None
    if chromium_path() is None:
        return {}, "static figures skipped: no Chromium installed (the figures are in report.html)"
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(asyncio.run, _render_all(plots))
    try:
        pngs = future.result(timeout=EXPORT_TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        pool.shutdown(wait=False, cancel_futures=True)
        return {}, f"static figures skipped: export took over {EXPORT_TIMEOUT_S} s"
    except Exception as exc:  # noqa: BLE001 — kaleido or Chromium failed; the HTML has them
        pool.shutdown(wait=False)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {}, f"static figures skipped: export failed ({first[:200]})"
    pool.shutdown(wait=False)
    missing = len(plots) - len(pngs)
    note = f"{missing} static figure(s) failed to export; see report.html" if missing else None
    return pngs, note


async def _render_all(plots) -> dict[str, bytes]:
    import kaleido

    out = {}
    async with kaleido.Kaleido(n=1, mathjax=False, timeout=60) as k:
        for plot in plots:
            opts = {"format": "png", "width": WIDTH, "height": plot.height}
            try:
                out[plot.key] = shrink_png(await k.calc_fig(plot.figure, opts=opts))
            except Exception:  # noqa: BLE001, S112 — one bad figure is left out, not the rest
                continue
    return out


def shrink_png(png: bytes) -> bytes:
    """Re-encode with an adaptive 256-colour palette: figures have few colours, and the
    file gets 2-4 times smaller. The original is kept if that does not help."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    buf = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG",
                                                                    optimize=True)
    return buf.getvalue() if buf.tell() < len(png) else png


def gallery_sheet(gallery: Gallery, site: str, experts: list[int], columns: int = 8) -> bytes | None:
    """One PNG: a row per expert of `site` with its crops, or None when nothing to draw."""
    from PIL import Image, ImageDraw

    rows = [(e, [i.png for i in gallery.of(site, e) if i.png][:columns]) for e in experts]
    rows = [(e, crops) for e, crops in rows if crops]
    if not rows:
        return None
    label_w, cell = 40, CROP_PX + 4
    sheet = Image.new("RGB", (label_w + columns * cell, len(rows) * cell), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (expert, crops) in enumerate(rows):
        draw.text((4, r * cell + cell // 2 - 6), f"e{expert}", fill="black")
        for c, png in enumerate(crops):
            crop = Image.open(io.BytesIO(png)).convert("RGB")
            sheet.paste(crop, (label_w + c * cell + 2, r * cell + 2))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
