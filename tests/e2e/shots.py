"""Where the browser tests save their screenshots.

A plain test run writes them to a temporary directory, so `make test` leaves the checkout
clean; `make screenshots` (ROUTEVIZ_SCREENSHOTS=1) writes them to docs/screenshots/ for the
README.
"""

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def screenshot_dir() -> Path:
    if os.environ.get("ROUTEVIZ_SCREENSHOTS") == "1":
        path = ROOT / "docs" / "screenshots"
    else:
        path = Path(tempfile.gettempdir()) / "routeviz-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
