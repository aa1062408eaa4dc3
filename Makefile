# `make run` starts ds (API, mount and inbox on an embedded store under ./var);
# `make test` runs the whole test suite. Both install what they need first.
VENV ?= .venv
BIN := $(VENV)/bin
STORE ?= $(CURDIR)/var/store

.PHONY: run test lint bench setup

setup:
	./scripts/bootstrap.sh

run: setup
	./scripts/run.sh

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy datastore cli httpapi mount benchmarks

bench: setup
	$(BIN)/python -m benchmarks
