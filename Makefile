# Every target creates the virtualenv itself when it is missing, so a fresh clone
# needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow test-pg lint bench example clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# compat mode: a plain .pth entry instead of an import hook, so `gate` starts fast
	$(BIN)/python -m pip install --quiet --config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/budget-watchdog demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two workers (the machine's 2 cores): most of the suite waits on real daemons and servers.
test: lint
	$(BIN)/pytest -m "not slow" -q -n 2

test-slow: lint
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-pg

# The end-to-end suite again with the state in PostgreSQL (a throwaway server, a schema per
# test: tests/pg.py), and the store tests, which run on both engines anyway. The several-
# instances file always runs on PostgreSQL: the runs above have it.
PG_TESTS := tests/e2e tests/unit/test_store.py tests/integration/test_store_pg.py
test-pg: $(STAMP)
	WATCHDOG_TEST_STATE=postgresql $(BIN)/pytest -q $(PG_TESTS) \
		--ignore=tests/e2e/test_several_pg.py

bench: $(STAMP)
	$(BIN)/python -m bench

# Regenerate watchdog.example.toml from the config model (a test fails when they drift).
example: $(STAMP)
	$(BIN)/budget-watchdog check-config --example > watchdog.example.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo
