"""Per-token halting (A-ViT): `sample_models.glyph_act.HaltingGate`.

Each patch's halting layer is one `exit` row with token ≥ 0 (choice: that layer, weight:
its cumulative halting score there), recorded by the same adapter as a per-token exit head
(`tracers.sample_layers.token_exit`): the gate reports `exit_now` only at the layer where
the patch halts. Whether halted tokens were removed or only masked is the model's to say,
in its run config (`halted_tokens`).
"""

from __future__ import annotations

from routeviz.capture.adapters.contract import AdapterSpec
from tracers.sample_layers import token_exit


def register(registry) -> None:
    from sample_models.glyph_act import HaltingGate

    registry.register(HaltingGate, AdapterSpec(token_exit))
