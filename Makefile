# `make run` and `make test` each set themselves up from nothing.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# test workers (pytest-xdist): `make test WORKERS=0` runs the suite in one process
WORKERS ?= 2
STAMP := $(VENV)/.installed

.PHONY: run test test-fast e2e screenshots bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch first: a plain `torch` requirement would otherwise pull a multi-GB CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,spark,soft]"  # spark: tests/test_spark.py reads a store with PySpark; soft: tests trace soft-moe-pytorch's SoftMoE
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.address=127.0.0.1 --server.port=$(PORT) \
		--browser.gatherUsageStats=false --server.fileWatcherType=none --server.runOnSave=false

# Everything, browser tests included (CI runs this through .ci/run).
# Two workers (pytest-xdist), each test file on one of them (its module fixtures, e.g. the
# Spark session, built once): much of the suite waits on a browser, a JVM or a subprocess.
# The slowest tests are named in every CI log: the suite must stay under 15 min.
test: $(STAMP)
	$(PY) -m pytest tests -n $(WORKERS) --dist loadfile --durations=15

# The development tier: no browser tests, nothing marked slow (pytest.mark.slow).
test-fast: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/e2e -m "not slow and not e2e" -n $(WORKERS) --dist loadfile

e2e: $(STAMP)
	$(PY) -m pytest tests/e2e

# The browser tests, saving the README's pictures to docs/screenshots/ (tests/e2e/shots.py);
# other runs write them to a temporary directory.
screenshots: $(STAMP)
	ROUTEVIZ_SCREENSHOTS=1 $(PY) -m pytest tests/e2e

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) build *.egg-info
