# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
DEMO_ARGS ?=

.PHONY: demo test install compiled dev check-export lint nbtest pytest clean lab

$(VENV)/bin/python:
	python3 -m venv $(VENV)

# torch first, pinned: this is the CPU build the machine has on disk; asked for by another package, pip
# would fetch the newest build with several GB of CUDA libraries instead.
TORCH ?= torch==2.13.0

$(VENV)/.installed: $(VENV)/bin/python settings.ini setup.py
	$(PIP) "$(TORCH)"
	$(PIP) -e .
	@touch $@

# The ITCH framer and book engine compiled ahead of time (mqbench/compiled.py, ~45 s): a replay then starts in
# 0.4 s without numba. Remade when their source changes; without a C compiler it says so, and numba compiles
# them at first use instead. Not part of `install`: the main job does not need it and its 15 minutes are tight.
$(VENV)/.compiled: $(VENV)/.installed mqbench/itch.py mqbench/book.py mqbench/compiled.py
	$(PY) -m mqbench.compiled
	@touch $@

compiled: $(VENV)/.compiled

$(VENV)/.dev: $(VENV)/.installed
	$(PIP) -e ".[dev]"
	@touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev $(VENV)/.compiled

# The main job: a synthetic ITCH day, its books rebuilt, a summary printed.
demo: install
	$(VENV)/bin/mqbench demo $(DEMO_ARGS)

# JupyterLab with the widgets working (nbs/21_explore.ipynb opens first): the widget manager and anywidget are prebuilt
# extensions installed in the venv with their Python packages, so nothing is built or fetched. Loopback only; as root it
# needs --allow-root. `make lab LAB_ARGS=--port=8899` passes more options.
LAB_ARGS ?=
lab: dev
	$(VENV)/bin/jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=$(CURDIR) \
	  --LabApp.default_url=/lab/tree/nbs/21_explore.ipynb $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The library must be what the notebooks export, and the notebooks must be clean.
check-export: dev
	@tmp=$$(mktemp -d); cp -r nbs mqbench $$tmp/; \
	$(VENV)/bin/nbdev_export && $(VENV)/bin/nbdev_clean; \
	if ! diff -r -q -x __pycache__ -x '*.nbi' -x '*.nbc' $$tmp/nbs nbs || ! diff -r -q -x __pycache__ -x '*.nbi' -x '*.nbc' $$tmp/mqbench mqbench; then \
	  echo "nbdev_export or nbdev_clean changed the files above: export and clean the notebooks, then commit"; rm -rf $$tmp; exit 1; fi; \
	rm -rf $$tmp

lint: dev
	$(VENV)/bin/ruff check

# nbdev_test runs many notebooks in each worker process, so whether Triton interprets is fixed by the first notebook
# that imports triton (any that trains does). Without CUDA the kernel notebooks need the interpreter: choose it for all.
nbtest: dev
	@if $(PY) -c "import sys, torch; sys.exit(torch.cuda.is_available())"; then export TRITON_INTERPRET=1; fi; \
	$(VENV)/bin/nbdev_test --n_workers 2 --timing

pytest: dev
	$(PY) -m pytest -q tests

test: check-export lint nbtest pytest

clean:
	rm -rf $(VENV) build *.egg-info
