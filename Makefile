# `make run` and `make test` build .venv when missing and re-install only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test chromium bench gpu-check lint clean

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

test: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -q --durations=20

# The report test renders results/report.html in headless Chromium: Debian's package, installed when missing where
# that can be done (root and apt-get); elsewhere nothing is installed and the test skips, saying why. A failed
# install where it can be done fails here.
chromium:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "chromium: not installed, and installing it needs root and apt-get: the report test will skip"; \
	else \
		echo "chromium: installing Debian's chromium package"; \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends chromium >/dev/null; \
	fi

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
