# The README's two commands: `make run` and `make test`. Each bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test venv deps bench clean

$(BIN)/gis-grid: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

venv: $(BIN)/gis-grid

run: venv
	$(BIN)/gis-grid serve

# system packages, and the PostgreSQL/PostGIS cluster the suite's PostGIS half runs on
deps:
	bash scripts/system-deps.sh
	bash scripts/postgres.sh start

test: venv deps
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python bench/locate.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache
