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


def test_focus_families_defaults_to_content_and_names_what_it_left_out(tmp_path):
    """focus_families on a store: the default leaves provenance out and says why; named
    families override (the rest then "not chosen", or their provenance reason); a run with
    nothing but provenance pools it rather than nothing."""
    from routeviz.metrics.tag_families import focus_families
    from routeviz.store import open_store
    from tests.metrics_store import expert_routes, write_run

    routes = expert_routes("g", 0, {(e, 0): [e % 2] for e in range(4)})
    tags = [(e, -1, "source", f"file{e}") for e in range(4)]
    write_run(tmp_path / "s", "mixed", routes,
              tags=tags + [(e, -1, "kind", "code" if e < 2 else "prose") for e in range(4)]
              + [(e, 0, "token_type", "word") for e in range(4)])
    write_run(tmp_path / "s", "ids", routes, tags=tags)
    store = open_store(tmp_path / "s")
    default = focus_families(store, "mixed")
    assert (default.pooled, default.left_out, default.chosen) == (
        ["kind", "token_type"], {"source": "provenance"}, False)
    assert default.describe() == ("tag families pooled: kind, token_type; "
                                  "left out: source (provenance)")
    named = focus_families(store, "mixed", ["source", "kind"])
    assert named.pooled == ["kind", "source"]
    assert named.left_out == {"token_type": "not chosen"} and named.chosen
    assert named.as_json()["rule"] == "chosen"
    only_ids = focus_families(store, "ids")
    assert only_ids.pooled == ["source"] and only_ids.left_out == {}
    assert type(default).from_json(default.as_json()) == default
