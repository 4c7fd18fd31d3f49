"""app.py under cProfile in the script's own thread, the stats added to the file named by
ROUTEVIZ_PROFILE_OUT (one file per scenario, every rerun of it): the script
benchmarks/profile_app.py drives."""

import cProfile
import os
import pstats
import runpy
from pathlib import Path

out = os.environ.get("ROUTEVIZ_PROFILE_OUT")
profile = cProfile.Profile() if out else None
if profile:
    profile.enable()
try:
    runpy.run_path(str(Path(__file__).resolve().parent.parent / "app.py"), run_name="__main__")
finally:
    if profile:
        profile.disable()
        stats = pstats.Stats(profile)
        if Path(out).exists():
            stats.add(out)
        stats.dump_stats(out)
