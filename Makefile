# `make demo` is the whole set-up on a fresh machine: a virtual environment, PyTorch, barkbench
# itself, then one small training run that prints samples. `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch goes in first, so that pyproject's `torch>=2.2` is already met and pip adds no other
# build. On the machines this project is built on, torch==2.13.0 is a CPU build that lies on
# disk. From the public index on Linux it is the CUDA build (about 2.8 GB with its nvidia
# packages); for the CPU-only build (about 200 MB) on a machine without a GPU:
#     make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Another version or build replaces the installed one: make install TORCH="torch==2.5.1"
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# One stamp per choice of torch, so that asking for another one installs it.
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s %s' '$(TORCH)' '$(TORCH_INDEX)' | cksum | cut -d' ' -f1)

.PHONY: install demo test quick lint bench bench-ray bench-studies studies clean

install: $(VENV)/.installed

$(BIN)/python:
	@echo "==> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)

$(TORCH_STAMP): | $(BIN)/python
	@echo "==> installing $(TORCH)$(if $(TORCH_INDEX), from $(TORCH_INDEX)): the largest download; pip shows its progress"
	$(BIN)/pip install --force-reinstall $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple) "$(TORCH)"
	rm -f $(VENV)/.torch-* && touch $@

$(VENV)/.installed: pyproject.toml $(TORCH_STAMP)
	@echo "==> installing barkbench (editable) with typer, rich, pydantic, safetensors, matplotlib,"
	@echo "    and the extras the tests use: pytest, ruff, Ray (--launcher ray), TensorBoard (log.tensorboard),"
	@echo "    pandas (Study.frame() in Python)"
	$(BIN)/pip install -q -e ".[dev,ray,tensorboard,pandas]"
	@echo "==> installed; activate it with: source $(VENV)/bin/activate"
	touch $@

demo: install
	$(BIN)/barkbench train --config baby

test: install
	$(BIN)/pytest -q

# The suite without the tests that start processes or send signals: under a minute.
quick: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check barkbench benchmarks tests
	$(BIN)/ruff format --check barkbench benchmarks tests

bench: install
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/bench_evaluate.py

# The same 8-run study through --launcher local --jobs 2 and --launcher ray: Ray's cost per run.
bench-ray: install
	$(BIN)/python benchmarks/bench_launchers.py

# A shipped study's wall time here against another commit (a git worktree), interleaved:
#     make bench-studies AGAINST=11e6f65 [STUDY=long_context] [ROUNDS=1] [OVERRIDES="train.steps=500"]
STUDY ?= long_context
ROUNDS ?= 1
bench-studies: install
	$(if $(AGAINST),,$(error give the commit to compare with, e.g. make bench-studies AGAINST=11e6f65))
	$(BIN)/python benchmarks/bench_studies.py --against $(AGAINST) --study $(STUDY) --rounds $(ROUNDS) $(OVERRIDES)

# Every shipped study as shipped (or STUDIES="long_context memory_map"), one after another, its
# outputs kept in studies/<name>/ for the README, the configs' headers and tests/test_shipped_studies.py.
studies: install
	$(BIN)/python benchmarks/run_studies.py $(STUDIES)

clean:
	rm -rf $(VENV) runs/*/ .pytest_cache .ruff_cache
