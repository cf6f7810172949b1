# The same steps as .ci/run and the Dockerfile: a venv, the project installed into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.toml

.PHONY: install run once check test lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: install          ## start the daemon in the foreground on the example config
	$(BIN)/listener run --config $(CONFIG)

once: install         ## poll every source once, deliver, exit
	$(BIN)/listener run --once --config $(CONFIG)

check: install        ## validate the config, queries and alerts
	$(BIN)/listener check --config $(CONFIG)

test: install         ## the whole test suite
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check listener tests scripts bench
	$(BIN)/ruff format --check listener tests scripts bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format listener tests scripts bench
	$(BIN)/ruff check --fix listener tests scripts bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
