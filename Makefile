# refinery-mock: every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SERVER_PORT ?= 8080
BRIDGE_PORT ?= 8000
CONFIG ?= fixtures/configs/bargein_flow_superagent_realtime.yaml
PYTEST_ARGS ?=

.PHONY: setup run-stack run-server test test-fast test-stress fixtures fixtures-check sounds bench clean

# The venv and the project with its dependencies. silero-vad goes in without
# its dependencies: they would pull a multi-GB torch, and we only need the ONNX
# file it ships (run with onnxruntime).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m pip install -q --no-deps 'silero-vad>=5.1'
	touch $@

setup: $(STAMP)

run-stack: setup
	$(PY) -m bridge.stack --server-port $(SERVER_PORT) --bridge-port $(BRIDGE_PORT) --config $(CONFIG)

run-server: setup
	$(PY) -m server --port $(SERVER_PORT)

# Browser tests need Debian's chromium (apt, only when missing).
test: setup
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not sdk and not browser" $(PYTEST_ARGS)

# Load, per-frame costs, engines, simulator speed: bench/results.json and a table
# (under 15 min on 2 cores). BENCH_ARGS e.g. "--levels 1,10 --budget-s 300".
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench $(BENCH_ARGS)
# The stress suite of tests/stress at full size (make test runs it small);
# prints its figures and writes out/stress-figures.json. ~5-8 min on 2 cores.
test-stress: setup
	$(PY) -m pytest tests/stress -m stress --stress-scale full -p no:cacheprovider $(PYTEST_ARGS)

# Regenerate the committed speech fixtures (natural voices: hibari, piper).
fixtures: setup
	$(PY) -m pip install -q -e '.[fixtures]'
	$(PY) scripts/make_fixtures.py

# The non-speech sounds and their scenarios (numpy only).
sounds: setup
	$(PY) scripts/make_sounds.py
	$(PY) scripts/make_nonspeech_scenarios.py

fixtures-check: setup
	$(PY) -m pip install -q -e '.[fixtures]'
	$(PY) scripts/make_fixtures.py --check

clean:
	rm -rf $(VENV) .venv-sdk test-output out
