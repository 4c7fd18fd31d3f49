"""routeviz/metrics/tag_families.py: which tag families are content (Focus/Cover's default)."""

import pandas as pd

from routeviz.metrics.tag_families import ID_MIN_VALUES, content_families


def stats(*rows):
    return pd.DataFrame(rows, columns=["name", "n_values", "n_examples", "per_token"])


def test_provenance_names_are_left_out_whatever_their_counts():
    kept, left_out = content_families(stats(("source", 2, 100, False), ("File", 3, 100, True),
                                            ("token_type", 12, 100, True)))
    assert kept == ["token_type"]
    assert left_out == {"source": "provenance", "File": "provenance"}


def test_a_per_example_family_with_about_one_value_per_example_is_left_out():
    many = ID_MIN_VALUES + 1
    kept, left_out = content_families(stats(
        ("author", many, 2 * many, False),        # half as many values as examples: an id
        ("topic", many, 2 * many + 1, False),     # just under half: content
        ("shade", 2, 2, False),                   # few values: content even if one per example
        ("word", 5000, 10, True)))                # per token: never an id
    assert kept == ["topic", "shade", "word"]
    assert left_out == {"author": f"{many} values over {2 * many} examples"}
