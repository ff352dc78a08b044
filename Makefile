# Currents — `make demo` runs the engine, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help setup tools demo up test test-unit test-integration lint format bench evaluate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# MovieLens-100K for `currents evaluate --log ml-100k`: the recbole wheel carries it;
	# --no-deps keeps recbole's own (torch-sized) dependencies out.
	$(BIN)/python -m pip install --quiet --no-deps 'recbole==1.2.1'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP) ## create .venv and install Currents with its dev tools

tools: ## install the external tools the tests use (kcat, chromium, redis-server, openssl) when missing
	@command -v redis-server >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 || { \
	  echo "installing redis-server and openssl for the TLS tests (Debian packages)"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server openssl) >/dev/null || \
	  echo "could not install redis-server/openssl: tests/integration/test_tls.py will fail and say why"; }
	@command -v kcat >/dev/null 2>&1 || { \
	  echo "installing kcat (Debian package)"; \
	  (apt-get update -qq && apt-get install -y -qq kcat) >/dev/null || \
	  echo "could not install kcat: the kcat tests will fail and say why"; }
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium for the browser tests (Debian packages, no browser download)"; \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null || \
	  echo "could not install chromium: the tests/e2e browser tests will fail and say why"; }

demo: setup ## start embedded servers, worker, API and synthetic shoppers
	$(BIN)/currents up --demo

up: setup ## start the engine without synthetic traffic
	$(BIN)/currents up

test: setup tools ## run the whole test suite against real servers
	$(BIN)/python -m pytest

test-unit: setup ## unit tests and doctests only (no servers)
	$(BIN)/python -m pytest tests/unit currents schemas streams online_models serving benchmarks

lint: setup ## ruff, ruff format --check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## every benchmark at a size that fits in 10 minutes; JSON+PNG in benchmarks/results/
	$(BIN)/currents bench memory --users 2000 --items 1000 --sessions 3
	$(BIN)/currents bench pipeline --events 50000 --users 5000 --items 1000
	$(BIN)/currents bench freshness --rate 2000 --duration 20 --users 5000 --items 1000
	$(BIN)/currents bench pipeline --shape heavy-baskets --events 20000 --users 10000
	$(BIN)/currents bench freshness --shape heavy-baskets --rate 500 --duration 20 --users 10000 --items 23812
	$(BIN)/currents bench serving --rates 50,100,250,500,1000,2000 --step 5 --users 5000 --items 1000
	$(BIN)/currents bench scale --events 20000 --users 2000 --items 1000

evaluate: setup ## prequential evaluation on MovieLens-100K and on synthetic shoppers
	$(BIN)/currents evaluate --log ml-100k --every 5
	$(BIN)/currents evaluate --log synthetic --limit 60000 --every 5

clean: ## remove the venv, embedded server data and caches
	rm -rf $(VENV) .currents .pytest_cache .mypy_cache .ruff_cache .hypothesis benchmarks/results
