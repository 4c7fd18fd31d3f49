"""Report size and time for a large run: a synthetic 1,024,000-route text run (2000 examples
× 64 tokens × 8 expert sites, 16 experts) written with routeviz.store.write_part, then
`write_report` without static images. Prints JSON; the HTML should stay under ~10 MB.
Arguments: n_examples n_sites n_experts (default 2000 8 16)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from routeviz.report import write_report
from routeviz.store import open_store
from tests.report_store import large_run


def main(n_examples: int = 2000, n_sites: int = 8, n_experts: int = 16) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        n_routes = large_run(Path(tmp) / "store", n_examples=n_examples, n_sites=n_sites,
                             n_experts=n_experts)
        built = time.perf_counter() - start
        store = open_store(Path(tmp) / "store")
        start = time.perf_counter()
        paths = write_report(store, "large", Path(tmp) / "out", images=False)
        elapsed = time.perf_counter() - start
        sizes = {p.name: p.stat().st_size for p in paths}
    return {"benchmark": "report_size", "n_routes": n_routes, "n_sites": n_sites,
            "n_experts": n_experts, "store_build_s": round(built, 2),
            "report_s": round(elapsed, 2), "html_bytes": sizes["report.html"],
            "html_mb": round(sizes["report.html"] / 1e6, 2), "files": sizes}


if __name__ == "__main__":
    # default: 8 sites × 16 experts; `python -m benchmarks.report_size 300 48 64` is a wide
    # model (48 sites × 64 experts, 921,600 routes): 3072 expert cards, 97 figures
    print(json.dumps(main(*(int(a) for a in sys.argv[1:4]))))
