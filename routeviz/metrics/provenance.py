"""What a run's rows can stand for: an imported run (routeviz.importers) may have no gate
weights (NULL) and top-k positions that do not rank by score (`rank_order` `expert-id` or
`unknown` in its config). An analysis that needs a weight or a rank asks here and says so in
one line instead of computing nonsense; a traced run has both."""

from __future__ import annotations

from routeviz.errors import RoutevizError
from routeviz.metrics import _common as common


def rank_order(store, run: str) -> str:
    """`score` (rank 0 is the top choice: every traced run) or the import's `expert-id` /
    `unknown`."""
    order = common.facts(store, run).config.get("rank_order")
    return order if order in ("score", "expert-id", "unknown") else "score"


def has_weights(store, run: str) -> bool:
    return common.facts(store, run).config.get("weights") != "none"


def source_line(store, run: str) -> str | None:
    """`imported from vllm (openai-0.22+ (base64 .npy))`, or None for a traced run."""
    info = common.facts(store, run).config.get("import")
    if not isinstance(info, dict):
        return None
    return f"imported from {info.get('format')} ({info.get('version')})"


def require_ranks(store, run: str, what: str) -> None:
    """Raise one line where `what` needs rank 0 to be the top choice and it is not."""
    order = rank_order(store, run)
    if order != "score":
        raise RoutevizError(f"{what} needs each token's top choice, but run {run!r} has rank "
                            f"order {order!r} ({source_line(store, run) or 'its config'}): its "
                            "top-k order does not say which expert ranked first")


def require_weights(store, run: str, what: str) -> None:
    if not has_weights(store, run):
        raise RoutevizError(f"{what} needs gate weights, but run {run!r} has none "
                            f"({source_line(store, run) or 'its config'}: the engine gives none)")


def notes(store, run: str) -> list[str]:
    """One line per thing an imported run lacks that an analysis would need."""
    source = source_line(store, run)
    if source is None:
        return []
    out = []
    if not has_weights(store, run):
        out.append(f"{source}: no gate weights (NULL), so weight-based numbers (confidence's "
                   "mean top-1 weight, weight entropy) are left empty")
    order = rank_order(store, run)
    if order != "score":
        out.append(f"{source}: rank order {order!r}, so rank 0 is not the top choice and "
                   "top-1 analyses are refused")
    return out
