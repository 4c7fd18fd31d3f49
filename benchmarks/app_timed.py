"""app.py with the `routeviz.record` log (record()'s timings) going to the file named by
ROUTEVIZ_TIMINGS_LOG: the script benchmarks/app_response.py serves."""

import logging
import os
import runpy
from pathlib import Path

log = logging.getLogger("routeviz.runs.record")
if not log.handlers and os.environ.get("ROUTEVIZ_TIMINGS_LOG"):
    log.addHandler(logging.FileHandler(os.environ["ROUTEVIZ_TIMINGS_LOG"]))
    log.setLevel(logging.INFO)
runpy.run_path(str(Path(__file__).resolve().parent.parent / "app.py"), run_name="__main__")
