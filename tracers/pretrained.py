"""minilm-moe and dinov2-small: their routing modules return a `Decision` already laid
out over the whole batch; the adapter only turns it into a RouteEvent."""

from __future__ import annotations

from routeviz.registry import register as register_adapter
from routeviz.schema import RouteEvent


def decision_event(module, inputs, output) -> RouteEvent:
    d = output.decision
    return RouteEvent(d.kind, d.choice, d.weight, valid=d.valid, token_index=d.token_index,
                      per_example=d.per_example)


def register() -> None:
    from sample_models.conditional import ExitGate, ExpertRouter, TokenMerger, TokenPruner

    for cls in (ExpertRouter, TokenPruner, TokenMerger, ExitGate):
        register_adapter(cls, decision_event)
