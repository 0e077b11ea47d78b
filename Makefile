# `make run` and `make test` build .venv when missing and re-install only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores all results/table5.csv

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q --durations=20

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run.py

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint

clean:
	rm -rf results resources .snakemake
