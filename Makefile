# cinefm: `make demo` runs the whole pipeline on the phantom cohort (CPU);
# `make test` runs the test suite. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# every core of the machine (nproc); `make demo CORES=4` uses fewer
CORES ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (tests/conftest.py groups the tests per folder)
TEST_WORKERS ?= 2

.PHONY: install demo test envcheck lint dag clean

install: $(STAMP)

# The venv is rebuilt only when pyproject.toml changes (idempotent).
# torch/torchvision go first and pinned: pip then takes them from the local disk.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

demo: install
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/config.yaml
	@echo "report: results/report/index.html"

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# every rule of the tiny DAG in a venv built from its own envs/*.yaml (venvs cached in ~/.cache/cinefm/envs)
envcheck: install
	$(BIN)/cinefm envcheck --tiny --cores $(CORES)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakemake --lint --configfile config/config.yaml || true

dag: install
	$(BIN)/snakemake --rulegraph --configfile config/config.yaml | dot -Tsvg > docs/rulegraph.svg

clean:
	rm -rf results logs .snakemake
