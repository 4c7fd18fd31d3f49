"""The report's figures, in document order, built with `routeviz.figures`.

Each figure has a fixed key (never derived from a site, tag or run name) that names its
static copy `figures/<key>.png` and its place in the HTML and Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from routeviz import figures
from routeviz.figures.data import exit_frame
from routeviz.figures.export import standalone
from routeviz.report.collect import Report


@dataclass
class Plot:
    key: str  # file-name-safe: [a-z0-9-]
    section: str  # "overview", "site:<site>", "comparison"
    caption: str
    figure: object  # plotly Figure

    def __post_init__(self):
        # the report's figures leave the app: the same look from the CLI and from Export
        self.figure = standalone(self.figure)

    @property
    def height(self) -> int:
        return int(self.figure.layout.height or 420)


def pooled_tag_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows that pool every tag family ("*", or the only family)."""
    tag = "*" if (scores.tag == "*").any() else scores.tag.iloc[0]
    return scores[scores.tag == tag]


def build_plots(report: Report) -> list[Plot]:
    plots = overview_plots(report)
    for number, site in enumerate(report.detailed_sites):
        plots += site_plots(report, site, number)
    if report.comparison is not None:
        c = report.comparison
        plots.append(Plot("comparison-headline", "comparison",
                          "Headline numbers of the two runs",
                          figures.compare_bars(c.headline.fillna(0.0), report.run, c.against)))
    return plots


def overview_plots(report: Report) -> list[Plot]:
    plots = []
    for kind, result in report.focus.items():
        plots.append(Plot(f"focus-cover-{kind}", "overview",
                          f"Focus and Cover ({kind} routing), pooled first, then per site",
                          figures.focus_cover_bars(pooled_tag_scores(result.scores),
                                                   title=f"Focus and Cover: {kind} routing")))
    expert = report.focus.get("expert")
    if expert is not None:
        plots.append(Plot("alignment-pooled", "overview",
                          "A_ij over every expert site (the paper's pooled alignment)",
                          figures.alignment_heatmap(expert.matrix("*", "*").round(3))))
    if report.load is not None and len(report.load.experts):
        plots.append(Plot("load-all-sites", "overview", "Expert load share at every site",
                          figures.load_matrix(report.load.experts)))
    if report.keep is not None and len(report.keep.sites):
        plots.append(Plot("kept-fraction", "overview", "Kept-token fraction per keep site",
                          figures.kept_fraction(report.keep.sites)))
    if report.exits is not None:
        plots.append(Plot("exit-depth", "overview", "Exit depth histogram",
                          figures.exit_histogram(exit_frame(report.exits),
                                                 report.exits.n_layers)))
    return plots


def site_plots(report: Report, site: str, number: int) -> list[Plot]:
    plots = []
    section = f"site:{site}"
    for kind, result in report.focus.items():
        if not (result.subnetworks.site == site).any():
            continue
        plots.append(Plot(f"site-{number:02d}-alignment-{kind}", section,
                          f"A_ij ({kind} routing) at this site",
                          figures.alignment_heatmap(result.matrix(site, "*").round(3),
                                                    title=f"A_ij: tag i × {kind} subnetwork j")))
    if report.load is not None:
        experts = report.load.experts[report.load.experts.site == site]
        if len(experts):
            plots.append(Plot(f"site-{number:02d}-load", section, "Expert load at this site",
                              figures.load_bars(experts)))
    return plots
