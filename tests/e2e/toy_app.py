"""`app.py` with the tests' toy models listed beside the sample models, so the browser test
has a text and an image model with every kind of routing even where sample weights are
not built yet. Run as `streamlit run tests/e2e/toy_app.py`."""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sample_models
from sample_models import SampleEntry
from tests.app_support import TOY_MODELS

for name, (modality, routing, datasets) in TOY_MODELS.items():
    sample_models.REGISTRY.setdefault(name, SampleEntry(
        name, modality, routing, (), f"{name} (test toy)", "tests.app_toys:load"))

runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
