"""Every run-level figure by name, built from a store: what the Export page (and a report)
can offer. `available(store, run)` lists the names that apply to the run's routing kinds;
`build(store, run, name)` draws one."""

from __future__ import annotations

from routeviz.errors import RoutevizError, choose
from routeviz.figures import analysis, data, routing, tokens

# name -> routing kind it needs (None: any)
FIGURES = {
    "Focus/Cover": "tags",
    "A_ij heatmap": "tags",
    "Expert load": "expert",
    "Load matrix": "expert",
    "Path Sankey": "expert",
    "Exit histogram": "exit",
    "Kept fraction": "keep",
    "Token heatmap (example 0)": "tokens",
}


def available(store, run: str) -> list[str]:
    facts = store.facts(run)
    kinds, has_tags, has_tokens = set(facts.kinds), bool(facts.tags), facts.has_tokens
    out = []
    for name, need in FIGURES.items():
        if need == "tags" and (not has_tags or not kinds & {"expert", "keep", "exit"}):
            continue
        if need == "tokens" and not (has_tokens and kinds):
            continue
        if need in ("expert", "keep", "exit") and need not in kinds:
            continue
        if name == "Path Sankey" and len(facts.sites_of("expert")) < 2:
            continue  # a path needs two expert sites to go between
        out.append(name)
    return out


def build(store, run: str, name: str):
    """The named figure for `run` (a plotly Figure)."""
    from routeviz import metrics

    choose("figure", name, FIGURES)
    if name in ("Focus/Cover", "A_ij heatmap"):
        kind = next(k for k in ("expert", "keep", "exit") if k in store.facts(run).kinds)
        result = metrics.focus_cover(store, run, kind=kind)
        if name == "Focus/Cover":
            scores = result.scores
            return analysis.focus_cover_bars(scores[scores["tag"] == scores["tag"].iloc[0]])
        return analysis.alignment_heatmap(result.matrix("*", "*"))
    if name == "Expert load":
        return routing.load_bars(metrics.load(store, run).experts)
    if name == "Load matrix":
        return routing.load_matrix(metrics.load(store, run).experts)
    if name == "Path Sankey":
        transitions = metrics.paths(store, run).transitions
        if transitions.empty:
            raise RoutevizError(f"run {run!r} has no token paths: a path goes between two "
                                "expert sites, and no unit was routed at two")
        return routing.path_sankey(transitions)
    if name == "Exit histogram":
        ex = metrics.exits(store, run)
        return routing.exit_histogram(data.exit_frame(ex), ex.n_layers)
    if name == "Kept fraction":
        return routing.kept_fraction(metrics.keep(store, run).sites)
    first = store.first_example(run)
    routes = data.example_routes(store, run, first)
    strings = data.example_tokens(store, run, first)
    value = "expert" if (routes["kind"] == "expert").any() else (
        "kept" if (routes["kind"] == "keep").any() else "exit")
    grid, columns = data.token_grid(routes, len(strings), value,
                                    n_layers=store.facts(run).config.get("n_layers"))
    return tokens.token_heatmap(grid, columns, strings, value,
                                cards=data.route_cards(routes, strings) if len(strings) <= 400 else None)
