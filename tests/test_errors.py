"""routeviz/errors.py: one exception type for the user, and `choose`, which names what exists."""

import pytest

from routeviz.errors import NoRoutingModules, RoutevizError, RunExists, choose


def test_choose_returns_a_valid_name():
    assert choose("kind", "keep", ("expert", "keep")) == "keep"
    assert choose("run", "b", {"a": 1, "b": 2}) == "b"  # any iterable of names, a dict's keys


def test_unknown_name_lists_the_choices_sorted_on_one_line():
    with pytest.raises(RoutevizError) as info:
        choose("site", "gate", ["zeta", "alpha", "mid"])
    assert str(info.value) == "unknown site 'gate'; available: alpha, mid, zeta"
    assert "\n" not in str(info.value)


def test_no_choices_says_none():
    with pytest.raises(RoutevizError, match=r"^unknown run 'x'; available: \(none\)$"):
        choose("run", "x", [])


def test_choices_are_compared_as_strings():
    assert choose("format", "2", [1, 2]) == "2"
    with pytest.raises(RoutevizError, match="available: 1, 2"):
        choose("expert", 2, [1, 2])  # an int name is not among the str choices
    with pytest.raises(RoutevizError, match="unknown kind None"):
        choose("kind", None, ["expert"])


def test_specific_errors_are_routeviz_errors():
    assert issubclass(NoRoutingModules, RoutevizError)
    assert issubclass(RunExists, RoutevizError)
    assert issubclass(RoutevizError, Exception) and not issubclass(RoutevizError, ValueError)
