"""Timeline: a series beside another, on the shipped DAE-Syn store: the supervised top-k run
(`dae-syn-top-k-sup10`) next to its unsupervised twin."""

from pathlib import Path

import pytest

from app_pages.timeline_twin import twin_of
from tests.app_support import open_page, plotly_specs

STORE = Path(__file__).resolve().parents[1] / "sample_models" / "data" / "series" / "dae-syn"


def test_twin_is_the_name_without_or_with_the_supervision_suffix():
    names = ["dae-syn-top-k", "dae-syn-top-k-sup10", "dae-syn-reinforce"]
    assert twin_of("dae-syn-top-k-sup10", names) == "dae-syn-top-k"
    assert twin_of("dae-syn-top-k", names) == "dae-syn-top-k-sup10"
    assert twin_of("dae-syn-reinforce", names) is None


@pytest.mark.slow
@pytest.mark.skipif(not (STORE / "runs" / "run=dae-syn-top-k-sup10-step003000").exists(),
                    reason="the supervised series is not shipped")
def test_supervised_series_shows_beside_its_unsupervised_twin():
    at = open_page(STORE, timeout=300)
    at.switch_page("app_pages/timeline.py")
    at.session_state["timeline_series"] = "dae-syn-top-k-sup10"
    at.run(timeout=300)
    assert not at.exception and not at.error
    assert at.selectbox(key="timeline_beside").value == "dae-syn-top-k"
    chart = next(s for s in plotly_specs(at)
                 if s["layout"].get("title", {}).get("text", "").startswith("Pooled Focus"))
    lines = {t["name"]: t["y"] for t in chart["data"]}
    assert set(lines) == {f"{s} · {m}" for s in ("dae-syn-top-k-sup10", "dae-syn-top-k")
                          for m in ("focus", "cover")}
    # supervision on 10% of the examples: Cover ends well above the unsupervised twin's
    assert lines["dae-syn-top-k-sup10 · cover"][-1] > lines["dae-syn-top-k · cover"][-1] + 0.2
