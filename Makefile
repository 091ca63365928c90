# Gatherly developer entry points. Everything runs from the project's own virtualenv (.venv).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test lint bench clean clean-data

help:
	@echo "make run        start the whole system (gatherly up); Ctrl-C stops it"
	@echo "make test       lint, then the whole test suite"
	@echo "make lint       ruff, mypy, import contracts"
	@echo "make bench      benchmarks (python -m bench)"
	@echo "make clean      remove caches and build output (keeps .venv and .gatherly)"
	@echo "make clean-data remove the local data directory .gatherly (databases, streams, logs)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gatherly up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

clean-data:
	rm -rf .gatherly
