# The two set-up commands of README.md. Each creates its own virtualenv and installs pinned versions.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUITE ?= default

.PHONY: bench test ci-check clean-venv

bench: $(VENV)/.installed   ## run `gkd-bench run --all` and write results/default/LEADERBOARD.md
	$(BIN)/gkd-bench run --all

test: $(VENV)/.installed    ## the test suite (real-data tests need GKD_BENCH_DATA)
	$(BIN)/python -m pytest -q -ra

ci-check: $(VENV)/.installed  ## paper reproduction checks: run the `ci` suite, then its tolerance checks
	$(BIN)/gkd-bench run --suite ci --results-dir $(or $(CI_RESULTS),results)
	$(BIN)/gkd-bench check --suite ci --results-dir $(or $(CI_RESULTS),results)

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

clean-venv:
	rm -rf $(VENV)
