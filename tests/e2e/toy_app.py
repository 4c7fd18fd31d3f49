"""`app.py` with the tests' toy models installed beside the sample models, so the browser test
has a text and an image model with every kind of routing even where sample weights are
not built yet. Run as `streamlit run tests/e2e/toy_app.py`."""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tempfile

from tests.app_support import install_toys

TOYS = tempfile.mkdtemp(prefix="routeviz-toys-")  # the toys, installed as a plugin would be
install_toys(TOYS)
sys.path.append(TOYS)  # listed after the sample models, as before

runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
