# Every target creates the virtualenv itself when it is missing, so a fresh clone
# needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint bench example clean

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

test: lint
	$(BIN)/pytest -m "not slow" -q

test-slow: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

# Regenerate watchdog.example.toml from the config model (a test fails when they drift).
example: $(STAMP)
	$(BIN)/budget-watchdog check-config --example > watchdog.example.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo
