"""Static copies of the report's figures for report.md: PNG through kaleido and the local
Chromium (the process's one browser, routeviz.figures.export, all figures in one call,
MathJax off so nothing asks the network), and a contact sheet of each image gallery drawn with PIL.

A report never fails because a static copy failed: `export_pngs` returns what it managed
and a note saying what it did not.
"""

from __future__ import annotations

import io

from routeviz.report.gallery import CROP_PX, Gallery

EXPORT_TIMEOUT_S = 240  # all figures together
WIDTH = 1000


def export_pngs(plots) -> tuple[dict[str, bytes], str | None]:
    """{plot key: PNG bytes} for as many plots as kaleido renders, and a note or None."""
    return finish_pngs(start_pngs(plots))


def start_pngs(plots):
    """Start drawing the plots in the process's browser (routeviz.figures.export, shared
    with the app's figure downloads); `finish_pngs` waits for them. Between the two the
    caller's thread is free: the report writes its HTML and cards while Chromium draws."""
    from routeviz.figures.export import chromium_path, submit_images

    if not plots:
        return [], None
    if chromium_path() is None:
        return plots, None
    items = [(plot.figure, {"format": "png", "width": WIDTH, "height": plot.height})
             for plot in plots]
    return plots, submit_images(items, then=shrink_png)


def finish_pngs(started) -> tuple[dict[str, bytes], str | None]:
    from routeviz.errors import RoutevizError

    plots, pending = started
    if not plots:
        return {}, None
    if pending is None:
        return {}, "static figures skipped: no Chromium installed (the figures are in report.html)"
    try:
        images = pending.result_within(EXPORT_TIMEOUT_S)
    except RoutevizError as exc:  # no browser, or none in time; the HTML has the figures
        return {}, f"static figures skipped: export failed ({str(exc)[:200]})"
    pngs = {plot.key: image for plot, image in zip(plots, images)
            if isinstance(image, bytes)}  # one bad figure is left out, not the rest
    missing = len(plots) - len(pngs)
    note = f"{missing} static figure(s) failed to export; see report.html" if missing else None
    return pngs, note


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
