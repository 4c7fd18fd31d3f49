"""routeviz/store/schema.py: run names that are safe directory names, RouteEvent's defaults,
and the tables every writer and reader share."""

import numpy as np
import pyarrow as pa
import pytest

from routeviz.errors import RoutevizError
from routeviz.store import schema
from routeviz.store.schema import SKIP, RouteEvent, check_run_name


@pytest.mark.parametrize("name", ["a", "run-1", "Run_2.v3", "0", "x" * 128, "a.b-c_d"])
def test_safe_run_names_are_returned_unchanged(name):
    assert check_run_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 129, "../up", "a/b", "a\\b", ".hidden", "-dash",
                                  "_under", "a..b", "run 1", "run=1", "é", None, 5,
                                  "a\n"])  # `$` alone matched before a final newline
def test_unsafe_run_names_are_refused_with_the_rule(name):
    with pytest.raises(RoutevizError, match=r"invalid run name .*1-128 letters, digits"):
        check_run_name(name)


def test_route_event_defaults_record_every_token_of_every_example():
    event = RouteEvent("keep", choice=[1, 0])
    assert (event.weight, event.valid, event.token_index, event.layer, event.site,
            event.logits) == (None, None, None, None, None, None)
    assert event.per_example is False
    assert event._replace(layer=2).layer == 2 and event.layer is None


def test_skip_survives_an_int32_cast_and_is_no_real_choice():
    assert np.array([SKIP], dtype=np.int64).astype(np.int32)[0] == SKIP
    assert SKIP == np.iinfo(np.int32).min


def test_tables_and_kinds():
    assert {"expert", "keep", "exit", "merge"} <= set(schema.KINDS)
    assert len(set(schema.KINDS)) == len(schema.KINDS) < 128  # int8 codes, one per kind
    assert set(schema.TABLES) == {"runs", "examples", "tokens", "tags", "routes", "logits",
                                  "embeddings", "outputs"}
    for table in schema.TABLES.values():  # the run lives in the directory name, not the file
        assert "run" not in table.names
    assert schema.ROUTES.field("kind").type == pa.dictionary(pa.int8(), pa.string())
    assert schema.ROUTES.field("weight").type == pa.float32()
    assert schema.RUNS.field("created").type == pa.timestamp("us", tz="UTC")
    assert schema.OUTPUTS.field("logprobs").type == pa.list_(pa.float16())
