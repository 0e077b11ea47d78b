# `make run` and `make test` build .venv when missing and re-install only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test chromium turbojpeg bench gpu-check lint clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e .
	touch $(STAMP)

# The GPUs of this machine, counted when `run` starts (vidssl.core.devices, no CUDA): Snakemake starts at most that many
# GPU jobs at once, and each claims its own devices.
GPUS = $(shell $(VENV)/bin/python -c "from vidssl.core.devices import gpu_count; print(gpu_count())")

run: $(STAMP) turbojpeg
	$(VENV)/bin/snakemake --cores all results/table5.csv --resources gpu=$(GPUS)  # --resources takes every word after it

test: $(STAMP) chromium turbojpeg
	$(VENV)/bin/python -m pytest -q --durations=20

# Debian packages a target needs: $(1) installed when `$(2)` fails, where that can be done (root and apt-get); elsewhere
# nothing is installed and the line says what does without it ($(3)). A failed install where it can be done fails here,
# unless $(4) is `optional` (the package only speeds things up): then it says so and goes on.
define debian
	@if $(2); then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "$(1): not installed, and installing it needs root and apt-get: $(3)"; \
	else \
		echo "$(1): installing Debian's $(1) package"; \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $(1) >/dev/null \
			$(if $(filter optional,$(4)),|| echo "$(1): the install failed: $(3)",); \
	fi
endef

# The report test renders results/report.html in headless Chromium.
chromium:
	$(call debian,chromium,command -v chromium >/dev/null || command -v chromium-browser >/dev/null,the report test will skip)

# libjpeg-turbo's TurboJPEG library: with it the device path's workers decode frames to YCbCr planes for a GPU that
# does not decode JPEGs itself (vidssl.core.images.planes_decoder_here is the check).
TURBOJPEG_HERE = $(VENV)/bin/python -c "import sys; from vidssl.core.images import planes_decoder_here as here; \
	sys.exit(not here())"
turbojpeg: $(STAMP)
	$(call debian,libturbojpeg0,$(TURBOJPEG_HERE),the workers send such a GPU RGB and the planes tests skip,optional)

bench: $(STAMP) turbojpeg
	$(VENV)/bin/python benchmarks/run.py

# What no CPU can show (bf16 and channels_last steps at 224 px, roi_align on the GPU, one DDP step with two GPUs), a
# few minutes on one GPU; at a tiny size without one. Writes results/gpu_check.csv.
gpu-check: $(STAMP) turbojpeg
	$(VENV)/bin/python benchmarks/gpu_check.py

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint

clean:
	rm -rf results resources .snakemake
