# Shipyard: `make demo` and `make test` are all a fresh machine needs (Python 3.11+, git).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	scripts/install-bubblewrap
	touch $(STAMP)

install: $(STAMP)

## Start embedded Shipyard, deploy examples/hello to staging, change its config, stop it all.
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## Lint, types and the whole test suite, every marker (integration tests need Redis and PostgreSQL).
test: $(STAMP) lint typecheck pytest

## The inner loop: unit tests only, under two minutes on two cores. It leaves out the kinds of
## test that pyproject.toml's markers name; `make test` runs them all.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not (integration or docker or browser or network or slow)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy -p shipyard

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .shipyard .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
