"""A synthetic series with known answers, shared by the series metric and Timeline tests."""

from __future__ import annotations

from tests.metrics_store import expert_routes, write_run

STEPS = (10, 20, 30)


def assignments(step: int) -> dict:
    """Token t of example 0 (t = 0..5) at each step, 4 experts, top-2: step 10 -> {t, t+1}
    (mod 4); step 20 -> the same set, ranks swapped; step 30 -> {t+2, t+1}. So every expert e
    of step 20 is expert e+1 of step 30, and steps 10 and 20 share one of two experts with
    step 30, never its top-1."""
    shift = {10: (0, 1), 20: (1, 0), 30: (2, 1)}[step]
    return {(0, t): [(t + shift[0]) % 4, (t + shift[1]) % 4] for t in range(6)}


def three_step_store(path, series: str = "s"):
    """Runs <series>-step000010/20/30 at sites g0 and g1 (same routing), a parity tag and
    token texts w0..w5; plus a run "lone" that belongs to no series."""
    store = None
    for step in STEPS:
        chosen = assignments(step)
        routes = expert_routes("g0", 0, chosen) + expert_routes("g1", 1, chosen)
        store = write_run(path, f"{series}-step{step:06d}", routes,
                          tags=[(0, t, "parity", str(t % 2)) for t in range(6)],
                          tokens={0: [f"w{t}" for t in range(6)]},
                          config={"series": series, "step": step, "n_experts": 4})
    write_run(path, "lone", expert_routes("g0", 0, assignments(10)))
    return store
