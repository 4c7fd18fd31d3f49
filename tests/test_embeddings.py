"""UMAP maps of routing-probability vectors and hidden states (one UMAP warm-up per run)."""

import numpy as np
import pyarrow as pa
import pytest

from routeviz.analysis.embeddings import embed
from routeviz.errors import RoutevizError
from routeviz.store import schema, write_part
from tests.metrics_store import expert_routes, write_run


@pytest.fixture
def store(tmp_path):
    # 3 examples x 20 tokens; the top-1 expert follows the token's tag, so the map separates
    assign = {(e, t): [t % 4, (t + 1) % 4] for e in range(3) for t in range(20)}
    weights = {k: [0.8, 0.2] for k in assign}
    routes = expert_routes("moe.0.gate", 0, assign, weights)
    routes += [(e, t, 2, "exit", "exit", 2 + t % 2, 0, 1.0) for e in range(3) for t in range(20)]
    tags = [(e, t, "kind", f"k{t % 4}") for e in range(3) for t in range(20)]
    tags += [(e, -1, "lang", "py" if e else "en") for e in range(3)]
    st = write_run(tmp_path / "st", "r", routes, tags=tags,
                   tokens={e: [f"w{t}" for t in range(20)] for e in range(3)},
                   config={"n_experts": 4, "n_layers": 4})
    rng = np.random.default_rng(0)
    vectors = [rng.standard_normal(8).astype(np.float16).tolist() for _ in range(60)]
    write_part(st.path, "embeddings", "r", pa.table(
        {"example": [e for e in range(3) for _ in range(20)], "token": list(range(20)) * 3,
         "layer": [1] * 60, "site": ["moe.0.gate"] * 60, "vector": vectors},
        schema=schema.EMBEDDINGS))
    st.refresh()
    return st


@pytest.mark.slow  # UMAP's first call compiles (numba)
def test_routing_and_hidden_maps_are_sampled_and_coloured(store):
    res = embed(store, "r", limit=40)
    assert res.n_total == 60 and res.n_shown == 40 and len(res.points) == 40
    assert res.note == "40 of 60 tokens shown (random sample, seed 0)"
    pts = res.points
    assert np.isfinite(pts[["x", "y"]].to_numpy()).all()
    assert (pts.expert == pts.token % 4).all()  # colour by top-1 expert
    assert (pts["tag:kind"] == "k" + (pts.token % 4).astype(str)).all()
    assert set(pts["tag:lang"]) <= {"py", "en"}  # example tags reach their tokens
    assert (pts.exit_layer == 2 + pts.token % 2).all()
    assert (pts.text == "w" + pts.token.astype(str)).all()
    # same expert -> same routing vector -> points of one expert sit together
    centres = pts.groupby("expert")[["x", "y"]].mean()
    spread = pts.groupby("expert")[["x", "y"]].std().max().max()
    gaps = [np.linalg.norm(centres.iloc[i] - centres.iloc[j])
            for i in range(len(centres)) for j in range(i)]
    assert min(gaps) > spread

    hidden = embed(store, "r", source="hidden", limit=100)
    assert hidden.layer == 1 and hidden.n_shown == 60
    assert hidden.note == "60 of 60 tokens shown"
    assert "expert" in hidden.points and hidden.site == "moe.0.gate"


def test_errors_name_what_exists(store):
    with pytest.raises(RoutevizError, match="unknown site 'x'; available: moe.0.gate"):
        embed(store, "r", site="x")
    with pytest.raises(RoutevizError, match="unknown layer 7; available: 1"):
        embed(store, "r", source="hidden", layer=7)
    with pytest.raises(RoutevizError, match="unknown run"):
        embed(store, "nope")


@pytest.mark.slow  # UMAP's first call compiles (numba)
def test_states_of_an_older_store_without_sites_are_mapped_by_layer(tmp_path):
    assign = {(e, t): [t % 4, (t + 1) % 4] for e in range(2) for t in range(10)}
    st = write_run(tmp_path / "old", "r", expert_routes("moe.0.gate", 0, assign,
                                                         {k: [0.8, 0.2] for k in assign}),
                   config={"n_experts": 4})
    old = pa.schema([f for f in schema.EMBEDDINGS if f.name != "site"])
    rng = np.random.default_rng(1)
    write_part(st.path, "embeddings", "r", pa.table(
        {"example": [e for e in range(2) for _ in range(10)], "token": list(range(10)) * 2,
         "layer": [3] * 20, "vector": [rng.standard_normal(6).astype(np.float16).tolist()
                                       for _ in range(20)]}, schema=old))
    st.refresh()
    res = embed(st, "r", source="hidden")
    assert res.layer == 3 and res.state_site is None and res.n_shown == 20
    assert res.site == "moe.0.gate" and (res.points.expert == res.points.token % 4).all()
