# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create .venv with everything needed; nothing has to be installed by hand but Python 3.11+.
# Comments stay out of recipes (make would echo them); pip runs quiet, one line per step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_HOME ?= demo-home
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: demo test lint bench clean

# torch first and pinned: the project's range admits it, so pip keeps this build instead
# of resolving a newer one with several GB of CUDA packages.
$(BIN)/.installed: pyproject.toml
	@echo "Creating $(VENV) ..."
	@$(PYTHON) -m venv $(VENV)
	@echo "Installing torch 2.13.0 into $(VENV) (a large download unless pip has it cached) ..."
	@$(PIP) install torch==2.13.0
	@echo "Installing perfmode and its dependencies ..."
	@$(PIP) install -e ".[dev]"
	@touch $@
	@echo "Installed: $$($(BIN)/perfmode --version)"

# The main job on the embedded default: synthetic data, default config, a short run
# (about a minute), then what the trainer left behind. Run it again: it resumes.
demo: $(BIN)/.installed
	$(BIN)/perfmode set performance --home $(DEMO_HOME)
	$(BIN)/perfmode train --home $(DEMO_HOME) --timesteps 250000
	$(BIN)/perfmode status --home $(DEMO_HOME)
	$(BIN)/perfmode evaluate --checkpoint latest --home $(DEMO_HOME) --plot $(DEMO_HOME)/equity.png

test: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(BIN)/.installed
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_HOME)
