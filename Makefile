# The two commands a newcomer needs: `make demo` and `make test`.
# Both create ./.venv on a fresh machine and install Candor into it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[demo,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m candor.cli.demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadgroup

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/enrolment_throughput.py
	$(BIN)/python bench/search_latency.py
	$(BIN)/python bench/accuracy_lfw.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
