# shardforge's one entry point. `make help` lists the targets.
# Everything runs inside .venv, which these targets create; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PYO3_PYTHON := $(abspath $(PY))
# The extension is rebuilt when any Rust or packaging file changes.
STAMP := $(VENV)/.installed
SOURCES := $(shell find rust -name '*.rs' -o -name Cargo.toml) Cargo.toml pyproject.toml

.PHONY: help install demo test quick lint rust-test py-test bench gpu-bundle clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The train extra (torch, ~2.7 GB, cached by pip after the first time) is here for the loader's
# torch.utils.data path and the trainer; `pip install shardforge` alone does without it.
$(STAMP): $(PY) $(SOURCES)
	$(PIP) install -q -e '.[dev,train,report]'
	@touch $@

install: $(STAMP)  ## create .venv and build the extension (release) with the dev tools

demo: $(STAMP)  ## the main job: gather a real corpus, clean it, tokenize, train on clean vs raw text, write demo/report/
	$(VENV)/bin/shardforge pipeline configs/demo.toml

test: lint rust-test  ## everything: lints, Rust tests, all Python tests (slow ones too)
	$(PY) -m pytest -m 'slow or not slow'

quick: $(STAMP)  ## fast Python tests only
	$(PY) -m pytest

rust-test: $(PY)
	cargo test --workspace --exclude shardforge-python --quiet

lint: $(STAMP)  ## cargo fmt/clippy, ruff, mypy, stubtest
	cargo fmt --all --check
	cargo clippy --all-targets --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests bench
	$(VENV)/bin/ruff format --check python tests bench
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest shardforge._core

# Peers whose dependencies clash with ours get their own interpreters: datatrove, and rensa 0.4
# (the last release whose full-set R-MinHash evaluates k permutations per token).
PEER_DATATROVE := .venv-datatrove/bin/python
PEER_RENSA04 := .venv-rensa04/bin/python

$(PEER_DATATROVE):
	$(PYTHON) -m venv .venv-datatrove
	.venv-datatrove/bin/pip install -q 'datatrove[processing]==0.10.1' orjson spacy

$(PEER_RENSA04):
	$(PYTHON) -m venv .venv-rensa04
	.venv-rensa04/bin/pip install -q 'rensa==0.4.0' numpy

bench: $(STAMP) $(PEER_DATATROVE) $(PEER_RENSA04)  ## side-by-side benchmarks against the peers (installs the bench extra)
	$(PIP) install -q -e '.[dev,bench]'
	$(PY) bench/dedup.py --datatrove-python $(PEER_DATATROVE) --rensa04-python $(PEER_RENSA04)
	$(PY) bench/tokenization.py
	$(PY) bench/decontam.py
	$(PY) bench/filters.py
	$(PY) bench/loader.py
	$(PY) bench/parquet_output.py

# What a lent GPU machine (Python 3.12, torch, triton, no network) lacks, as one folder that the
# device tool carries: shardforge built for CPython 3.12, the peers and dependencies missing there,
# and a real tokenizer. bench/gpu.sh installs and runs from it. The build has its own target
# directory so that it does not invalidate the .venv build.
GPU_BUNDLE := .gpu
GPU_WHEELS := duckdb==2.0.0 liger-kernel==0.8.5 torchtitan==0.2.2 tyro docstring-parser typeguard \
	torchdata datasets dill multiprocess
GPU_PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64,--platform $(p))
TOKENIZER ?= ../shared/data/tokenizers/llama3.json

gpu-bundle: $(PY)  ## wheels and a tokenizer for a lent GPU machine, in .gpu/ (see bench/gpu.sh)
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)
	$(PIP) install -q 'maturin>=1.9.4,<2'  # the version pyproject.toml builds with
	CARGO_TARGET_DIR=target/cp312 PYO3_CROSS=1 PYO3_CROSS_PYTHON_VERSION=3.12 \
		$(VENV)/bin/maturin build --quiet --release -i python3.12 -m rust/python/Cargo.toml -o $(GPU_BUNDLE)
	$(PIP) download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(GPU_PLATFORMS) -d $(GPU_BUNDLE) $(GPU_WHEELS)
	gzip -c $(TOKENIZER) > $(GPU_BUNDLE)/tokenizer.json.gz
	@du -sh $(GPU_BUNDLE)

clean:
	rm -rf $(VENV) .venv-datatrove .venv-rensa04 target demo bench/out
