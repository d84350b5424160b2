# meshops: every target sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch: the CPU build from the local wheel store when one is there (no multi-GB CUDA download).
	$(BIN)/python -m pip install -q "torch==2.13.0" 2>/dev/null || true
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/meshops demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy src

unit: install
	$(BIN)/pytest -q

test: install lint typecheck unit

bench: install
	$(BIN)/python benchmarks/run_all.py

docs: install
	$(BIN)/python -m meshops.cli.docs docs/reference

clean:
	rm -rf $(VENV) .meshops .pytest_cache .mypy_cache .ruff_cache
