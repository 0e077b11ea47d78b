# `make run` and `make test` build .venv when missing and re-install only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test bench gpu-check lint clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e .
	touch $(STAMP)

# The GPUs of this machine, counted when `run` starts (vidssl.core.devices, no CUDA): Snakemake starts at most that many
# GPU jobs at once, and each claims its own devices.
GPUS = $(shell $(VENV)/bin/python -c "from vidssl.core.devices import gpu_count; print(gpu_count())")

run: $(STAMP)
	$(VENV)/bin/snakemake --cores all results/table5.csv --resources gpu=$(GPUS)  # --resources takes every word after it

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q --durations=20

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run.py

# What no CPU can show (bf16 and channels_last steps at 224 px, roi_align on the GPU, one DDP step with two GPUs), a
# few minutes on one GPU; at a tiny size without one. Writes results/gpu_check.csv.
gpu-check: $(STAMP)
	$(VENV)/bin/python benchmarks/gpu_check.py

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint

clean:
	rm -rf results resources .snakemake
