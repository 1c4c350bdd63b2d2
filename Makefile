# Wattline: `make demo` runs the whole demo, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser || true)
# pytest-xdist processes: the cores, at most 4 (each runs its own browser, embedded broker
# and PostgreSQL database). TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 4 ? 4 : n )))
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS)

.PHONY: demo test test-timescaledb lint typecheck unit integration e2e browser bench screenshots clean help

help:
	@echo "make demo        - set up and run the whole demo (embedded broker + SQLite)"
	@echo "make test        - set up and run lint, type checks and the whole test suite"
	@echo "make bench       - run the benchmarks and write docs/benchmarks.md"
	@echo "                   (one section: make bench BENCH_ARGS='--only ingest')"
	@echo "make unit        - the unit tests only (tests/unit)"
	@echo "make integration - the integration tests only (tests/integration)"
	@echo "make e2e         - the browser tests only (tests/e2e, Debian chromium)"
	@echo "make lint        - ruff check and format check"
	@echo "make typecheck   - mypy --strict"
	@echo "make test-timescaledb - the storage tests on TEST_TIMESCALEDB_URL"
	@echo "make screenshots - rebuild docs/screenshots/*.png"
	@echo "make browser     - install Debian chromium for the browser tests (as root)"
	@echo "make clean       - remove the venv, instance/ and tool caches"

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): requirements.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

$(DEV): requirements-dev.txt $(RUNTIME)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

demo: $(RUNTIME)
	WATTLINE_DEMO=1 $(BIN)/python -m app.demo

# Debian's chromium drives the browser tests; Playwright never downloads a browser.
browser:
	@if [ -z "$(CHROMIUM)" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: no chromium found and cannot apt-get it; browser tests will be skipped"; \
	  fi; \
	fi

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV)
	$(BIN)/mypy

# The storage tests again on a PostgreSQL with TimescaleDB, where `readings` is a hypertable,
# when TEST_TIMESCALEDB_URL names one (.ci/run starts it with scripts/timescaledb.sh).
TSDB_TESTS := $(addprefix tests/integration/test_,$(addsuffix .py,ingest fast_ingest \
  ingest_shared worker_process rollups_store vee_store vee_schedule exports_api import \
  backfill dead_letter_replay meter_page migrations query_plans))

test: $(DEV) browser lint typecheck
	$(PYTEST)
	@if [ -n "$$TEST_TIMESCALEDB_URL" ]; then $(MAKE) --no-print-directory test-timescaledb; fi

test-timescaledb: $(DEV)
	@if [ -z "$$TEST_TIMESCALEDB_URL" ]; then \
	  echo "set TEST_TIMESCALEDB_URL (scripts/timescaledb.sh start prints it)" >&2; exit 2; fi
	TEST_DATABASE_URL="$$TEST_TIMESCALEDB_URL" $(PYTEST) -m postgres $(TSDB_TESTS)

unit: $(DEV)
	$(PYTEST) tests/unit

integration: $(DEV)
	$(PYTEST) tests/integration

e2e: $(DEV) browser
	$(PYTEST) tests/e2e

BENCH_ARGS ?=
bench: $(DEV)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# Rebuild docs/screenshots/*.png from a throwaway demo database (Debian chromium).
screenshots: $(DEV) browser
	$(BIN)/python -m scripts.screenshots

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
