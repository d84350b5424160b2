# meshops: every target sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install mlflow-client demo test lint typecheck unit bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch: the CPU build from the local wheel store when one is there (no multi-GB CUDA download).
	$(BIN)/python -m pip install -q "torch==2.13.0" 2>/dev/null || true
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# The real MLflow client for tests/mlflow, in its own virtualenv: its dependencies never
# meet meshops's own. Made once; remade only when tests/mlflow/requirements.txt changes.
MLFLOW_VENV ?= .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed

$(MLFLOW_STAMP): tests/mlflow/requirements.txt
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install -q -r tests/mlflow/requirements.txt
	touch $(MLFLOW_STAMP)

mlflow-client: $(MLFLOW_STAMP)

demo: install
	$(BIN)/meshops demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy src

# Two processes (pytest-xdist): the suite waits on servers, browsers and subprocesses as much
# as it computes. Modules that start a local Ray cluster share one process (tests/conftest.py).
TEST_WORKERS ?= 2

unit: install mlflow-client
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=30

test: install lint typecheck unit

bench: install
	$(BIN)/python benchmarks/run_all.py

docs: install
	$(BIN)/python -m meshops.cli.docs docs/reference

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) .meshops .pytest_cache .mypy_cache .ruff_cache
