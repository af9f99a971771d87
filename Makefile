# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create .venv with everything needed; nothing has to be installed by hand but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_HOME ?= demo-home

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first and pinned: the project's range admits it, so pip keeps this build
	# instead of resolving a newer one with several GB of CUDA packages.
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/perfmode status --home $(DEMO_HOME)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_HOME)
