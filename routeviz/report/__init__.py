"""Specialization reports: `routeviz report` and the app's Export page.

    write_report(store, run, out_dir, against=None, tags=None) -> [written paths]
    build_report_zip(store, run, against=None, tags=None) -> bytes (the same files, zipped)
    build_report_files(store, run, against=None, tags=None) -> {file name: bytes}
    (both take images=True: static PNG copies of the figures, and progress=callable(fraction,
    what) told before each step)

Files (names fixed here, never taken from a run, site, tag or token):
    report.html      one self-contained page (plotly.js embedded once), opens offline
    report.md        the same findings as Markdown tables, figures in figures/*.png
    metrics.json     the `routeviz metrics --json` object + routeviz_version + config
    focus_cover.csv, alignment.csv, load.csv, experts.csv, exits.csv, keep.csv
"""

from __future__ import annotations

import io
import os
import re
import uuid
import zipfile
from pathlib import Path

from routeviz.errors import RoutevizError
from routeviz.report.cards import add_cards_section, card_result
from routeviz.report.collect import Report, collect
from routeviz.report.html import render_html
from routeviz.report.markdown import render_markdown
from routeviz.report.plots import build_plots
from routeviz.report.soft import add_soft_section
from routeviz.report.static import finish_pngs, gallery_sheet, start_pngs
from routeviz.report.tables import csv_files, metrics_json

__all__ = ["Report", "build_report_files", "build_report_zip", "collect", "write_report"]

FIGURES_DIR = "figures"
_SAFE_NAME = re.compile(r"^(figures/)?[a-z0-9][a-z0-9_-]*\.(html|md|json|csv|png)$")


def build_report_files(store, run: str, against: str | None = None, tags=None,
                       images: bool = True, progress=None,
                       summary: dict | None = None) -> dict[str, bytes]:
    """Every file of the report, in memory. images=False leaves out the static PNG copies
    (report.md then points to report.html for the figures). progress(fraction, what): told
    before each step (the Export page's progress bar); fractions by each step's share of a
    500-example report's time. summary: the run's metrics.summary (with these tags) where
    the caller has it already (collect)."""
    say = progress or (lambda fraction, what: None)
    if images:  # Chromium starts (if it is not up yet) while the numbers are collected
        from routeviz.figures.export import warm_up

        warm_up()
    say(0.0, "Collecting the numbers")
    report = collect(store, run, against=against, tags=tags, summary=summary)
    say(0.35, "Building the figures")
    plots = build_plots(report)
    # Chromium draws the static figures (in its own process) while this thread writes the
    # HTML and computes the cards; the Markdown, which links the figures, waits for them
    started = start_pngs(plots) if images else None
    files: dict[str, bytes] = {}
    image_paths: dict[str, str] = {}
    say(0.45, "Writing report.html")
    html_page = render_html(report, plots).encode("utf-8")
    say(0.55, "Computing the expert cards")
    cards = card_result(store, run, tags=tags)
    note = "static figures not requested" if not images else None
    if images:
        say(0.8, "Waiting for the static figures (Chromium)")
        pngs, note = finish_pngs(started)
        for key, png in pngs.items():
            files[f"{FIGURES_DIR}/{key}.png"] = png
            image_paths[key] = f"{FIGURES_DIR}/{key}.png"
        _add_gallery_sheets(report, files, image_paths)
    say(0.9, "Writing report.md, the CSV and JSON files")
    files["report.html"] = html_page
    files["report.md"] = render_markdown(report, plots, image_paths, note).encode("utf-8")
    add_soft_section(store, run, files)  # Soft MoE runs only
    files["metrics.json"] = metrics_json(report)
    files.update(csv_files(report))
    add_cards_section(store, run, files, tags=tags, result=cards)  # experts.csv labels too
    say(1.0, "Done")
    return files


def _add_gallery_sheets(report: Report, files: dict, image_paths: dict) -> None:
    if report.gallery is None or report.gallery.modality != "image":
        return
    for number, site in enumerate(report.detailed_sites):
        experts = report.load.experts
        ids = [int(e) for e in experts[experts.site == site].expert]
        sheet = gallery_sheet(report.gallery, site, ids)
        if sheet is not None:
            name = f"{FIGURES_DIR}/site-{number:02d}-gallery.png"
            files[name] = sheet
            image_paths[f"gallery:{site}"] = name


def write_report(store, run: str, out_dir, against: str | None = None, tags=None,
                 images: bool = True) -> list[Path]:
    """Write the report's files into `out_dir` (created if missing); return their paths."""
    prepare_out(out_dir, images)  # fail before the work, not after it
    files = build_report_files(store, run, against=against, tags=tags, images=images)
    return write_files(out_dir, files)


def build_report_zip(store, run: str, against: str | None = None, tags=None,
                     images: bool = True, progress=None, summary: dict | None = None) -> bytes:
    """The report's files as one zip archive (for a download button)."""
    files = build_report_files(store, run, against=against, tags=tags, images=images,
                               progress=progress, summary=summary)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(_checked_name(name), data)
    return buf.getvalue()


def _checked_name(name: str) -> str:
    if not _SAFE_NAME.match(name):  # names are ours; this guards against a future mistake
        raise RoutevizError(f"refusing to write report file {name!r}")
    return name


def prepare_out(out_dir, images: bool = True) -> Path:
    """Create `out_dir` if missing and return it resolved; refuse a file, or a figures
    folder that is a link or a file."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise RoutevizError(f"--out {str(out)!r} is a file, not a directory")
    folder = out / FIGURES_DIR
    if images and (folder.is_symlink() or (folder.exists() and not folder.is_dir())):
        raise RoutevizError(f"{str(folder)!r} is not a plain folder; "
                            "remove it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()


def write_files(out_dir, files: dict[str, bytes]) -> list[Path]:
    """Write each file under `out_dir` by a temporary name and a rename; never follow a
    symlink out of `out_dir` (a linked file is replaced, a linked folder is refused)."""
    root = prepare_out(out_dir, images=any("/" in name for name in files))
    written = []
    for name, data in files.items():
        target = root / _checked_name(name)
        folder = target.parent
        if folder != root:
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise RoutevizError(f"{str(folder)!r} is not a plain folder; "
                                    "remove it or choose another --out")
            folder.mkdir(exist_ok=True)
        if folder.resolve() != folder or not folder.resolve().is_relative_to(root):
            raise RoutevizError(f"refusing to write outside {str(root)!r}")
        tmp = folder / f".tmp-{uuid.uuid4().hex}-{target.name}"
        tmp.write_bytes(data)
        os.replace(tmp, target)
        written.append(target)
    return written
