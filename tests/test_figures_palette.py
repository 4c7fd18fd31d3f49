"""routeviz/figures/palette.py: one stable colour per expert, readable text on each."""

import math

from routeviz.figures.palette import (
    EXPERT_COLORS,
    MISSING_COLOR,
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
