# Developer entry points. `make test` is the one command that runs every test from scratch.
PYTHON ?= python3

.PHONY: test setup lint

setup:
	bash .ci/setup

test: setup
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check operator tests benchmarks
	$(PYTHON) -m mypy
