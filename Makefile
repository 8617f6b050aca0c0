# `make demo` is the whole set-up on a fresh machine: a virtual environment, the CPU build of
# PyTorch, barkbench itself, then one small training run that prints samples.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build: installed first, so that pyproject's `torch>=2.2` is already satisfied and
# pip never pulls the multi-GB CUDA build. Override on a machine with a GPU: make install TORCH=torch
TORCH ?= torch==2.13.0

.PHONY: install demo test quick lint bench bench-ray clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,ray]"
	touch $@

demo: install
	$(BIN)/barkbench train --config configs/baby.yaml

test: install
	$(BIN)/pytest -q

# The suite without the tests that start processes or send signals: under a minute.
quick: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check barkbench tests
	$(BIN)/ruff format --check barkbench tests

bench: install
	$(BIN)/python -m barkbench.bench

# The same 8-run study through --launcher local --jobs 2 and --launcher ray: Ray's cost per run.
bench-ray: install
	$(BIN)/python -m barkbench.bench_launchers

clean:
	rm -rf $(VENV) runs/*/ .pytest_cache .ruff_cache
