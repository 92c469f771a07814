# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast schema baseline install clean bench seed-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start the whole product on its embedded defaults (Ctrl-C stops it all).
run: $(STAMP)
	$(PY) -m app dev

## Install what the tests need and run them all.
test: $(STAMP)
	$(PY) -m pytest

## The inner loop: everything but the multi-process, crash and whole-product suites.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

## The sale-day rush and the reads scenario of DESIGN section 7 on the embedded default (docs/BENCHMARKS.md); BENCH_ARGS="--scenario reads" picks.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

## Load a demo catalog of N events (default 100,000) into the embedded database (stop `make run` first) or MONGODB_URI.
N ?= 100000
seed-demo: $(STAMP)
	$(PY) -m app seed-demo --events $(N)

## Export the GraphQL schema the code defines to schema.graphql.
schema: $(STAMP)
	$(PY) -m app schema > schema.graphql

## Publish the current API as the baseline no later change may break (a deliberate release step).
baseline: $(STAMP)
	$(PY) -m app schema > schema.baseline.graphql

clean:
	rm -rf $(VENV) .data .pytest_cache
