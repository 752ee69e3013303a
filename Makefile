# Two commands for a newcomer: `make demo` and `make test`. Both create .venv and install
# from constraints.txt (a lock generated from a known-good venv: `make lock`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9

# This environment sets PYTHONDONTWRITEBYTECODE=1, so every Python process (each Airflow
# component, the demo, pytest) would compile Airflow from source again. Keep one bytecode
# cache for the project's commands, under .venv (not next to the sources).
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache

.PHONY: demo test lint typecheck pytest lock bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python --constraint constraints.txt --editable ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/airflow-task-runs demo --dags-folder example_dags --output demo-output

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/import_cost.py airflow_task_runs.ncp.sensors airflow_task_runs.oci.sensors airflow_task_runs.aws.sensors airflow_task_runs.alibaba.sensors

lock:
	$(BIN)/uv pip freeze --python $(BIN)/python --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
