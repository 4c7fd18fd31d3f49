"""Where a rerun of the dashboard spends its time, without a browser: the app under
Streamlit's AppTest with cProfile on in the script's thread (benchmarks/app_profiled.py), for
  click  - "Run the model" on Inspect with a ~200-token text on text-moe (the model loaded
           by a first click, not counted), then the rerun that draws the new run;
  rerun  - the same page again with nothing written (a widget's rerun);
  switch - Inspect -> Experts -> Inspect.
Prints one JSON object: wall and CPU seconds per scenario and the functions with the most
cumulative time (`--top`). The browser's own share is in benchmarks/app_response.py.

`--runs N` first fills the store with N one-input runs: a click's queries, the store's
refresh and the sidebar's run list grow with the runs a store holds (each click adds one).

usage: python -m benchmarks.profile_app [--top 25] [--store DIR] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _stats(path: Path, top: int) -> list:
    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, name), (_cc, _nc, tt, ct, _callers) in stats.stats.items():
        rows.append((ct, tt, f"{Path(file).name}:{line}({name})"))
    rows.sort(reverse=True)
    return [{"cum_s": round(ct, 3), "self_s": round(tt, 3), "function": where}
            for ct, tt, where in rows[:top]]


def scenario(at, name: str, step, top: int, folder: Path) -> dict:
    out = folder / f"{name}.prof"
    os.environ["ROUTEVIZ_PROFILE_OUT"] = str(out)
    start, cpu = time.perf_counter(), time.process_time()
    step(at)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    os.environ.pop("ROUTEVIZ_PROFILE_OUT", None)
    assert not at.exception, [e.value for e in at.exception]
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "profile": _stats(out, top) if out.exists() else None}


def main(argv=None) -> dict:
    from streamlit.testing.v1 import AppTest

    from benchmarks.app_driver import text_of_tokens
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record
    from routeviz.runs.uploads import item_from_text

    parser = argparse.ArgumentParser()
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--store")
    parser.add_argument("--runs", type=int, default=1, help="one-input runs in a new store")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="routeviz-profile-app-"))
    store = Path(args.store) if args.store else folder / "store"
    runner = load_model("text-moe")
    text, _ = text_of_tokens(runner)
    if not store.exists():
        for i in range(max(args.runs, 1)):
            record(runner, [item_from_text(f"a first run {i}")], store, f"inspect-{i}")
    at = AppTest.from_file(str(HERE / "app_profiled.py"), default_timeout=300)
    at.session_state["store_path"] = str(store)
    at.run()
    at.selectbox(key="inspect_model").set_value("text-moe").run()
    at.text_area(key="inspect_text").set_value(text).run()
    at.button(key="inspect_go").click().run()  # loads the model: not counted
    out = {"benchmark": "profile_app", "load_average": round(os.getloadavg()[0], 2),
           "runs_in_store": max(args.runs, 1)}
    out["click"] = scenario(at, "click", lambda a: a.button(key="inspect_go").click().run(),
                            args.top, folder)
    out["rerun"] = scenario(at, "rerun", lambda a: a.run(), args.top, folder)

    def switch(a):
        a.switch_page("../app_pages/experts.py").run()
        a.switch_page("../app_pages/inspect.py").run()

    out["switch"] = scenario(at, "switch", switch, args.top, folder)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
