"""routeviz/figures/palette.py: one stable colour per expert, distinct from each other and
from the reserved token-state colours, readable text on each."""

import itertools
import math

import pytest

from routeviz.figures.palette import (
    EXPERT_COLORS,
    KEPT_COLOR,
    MISSING_COLOR,
    RESERVED_COLORS,
    delta_e,
    discrete_colorscale,
    expert_color,
    text_color_on,
)


def test_expert_colours_are_distinct_cycle_and_grey_for_none():
    assert len(set(EXPERT_COLORS)) == len(EXPERT_COLORS) == 24
    assert [expert_color(e) for e in range(24)] == list(EXPERT_COLORS)
    assert expert_color(24) == expert_color(0) and expert_color(3.0) == EXPERT_COLORS[3]
    assert {expert_color(None), expert_color(math.nan), expert_color(-1)} == {MISSING_COLOR}


def test_discrete_colorscale_gives_each_integer_one_flat_band():
    scale = discrete_colorscale(3)
    assert [stop for stop, _ in scale] == [0.0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0]
    assert [colour for _, colour in scale] == [EXPERT_COLORS[i] for i in (0, 0, 1, 1, 2, 2)]
    assert discrete_colorscale(0) == discrete_colorscale(1) == [[0.0, EXPERT_COLORS[0]],
                                                                [1.0, EXPERT_COLORS[0]]]


def test_text_colour_is_black_on_light_and_white_on_dark():
    assert text_color_on("#FFFFFF") == "#000000" and text_color_on(MISSING_COLOR) == "#000000"
    assert text_color_on("#000000") == "#FFFFFF" and text_color_on("#0D2A63") == "#FFFFFF"


def test_delta_e_is_ciede2000():
    assert delta_e("#FFFFFF", "#000000") == pytest.approx(100, abs=1e-3)
    assert delta_e("#3366CC", "#3366CC") == 0
    assert delta_e("#808080", "#818181") < 1


def test_expert_colours_have_distinct_hues_and_never_a_state_colour():
    """The 16-expert palette had e4/e10/e11 as magentas 9 apart (CIEDE2000), and e2 was the
    kept green: a kept chip read as expert 2."""
    first16 = EXPERT_COLORS[:16]
    assert min(delta_e(a, b) for a, b in itertools.combinations(first16, 2)) >= 20
    assert min(delta_e(a, b) for a, b in itertools.combinations(EXPERT_COLORS, 2)) >= 15
    assert len(set(RESERVED_COLORS.values())) == 5 and KEPT_COLOR == RESERVED_COLORS["kept"]
    for state, colour in RESERVED_COLORS.items():
        nearest = min(delta_e(colour, e) for e in EXPERT_COLORS)
        assert nearest >= 20, (state, nearest)
