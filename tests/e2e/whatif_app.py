"""A one-panel page for the What-if browser test: `render_whatif` on the run named by
ROUTEVIZ_WHATIF_RUN, example 0, of the store in ROUTEVIZ_STORE (until Inspect calls the
panel itself). Run as `streamlit run tests/e2e/whatif_app.py`."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st

from app_pages.common import get_handle
from app_pages.whatif import render_whatif

st.title("What if")
render_whatif(get_handle(), os.environ["ROUTEVIZ_WHATIF_RUN"], 0)
