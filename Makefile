# One entry point per job. Every target sets itself up from nothing and is idempotent.
#   make setup   venv + project with its extras + offline LIBERO assets/config
#   make test    setup, then the default (fast) test suite
#   make test-slow  the slow/simulation tests too
#   make demo    the main job: demos -> tokens -> 4 variants -> offline + closed-loop eval -> REPORT.md
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup test test-slow demo clean-venv libero-assets

$(PY):
	@PYBIN=$$(scripts/find_python.sh) && echo "using $$PYBIN" && $$PYBIN -m venv $(VENV)

$(STAMP): pyproject.toml $(PY)
	@scripts/check_system_deps.sh
	@[ -x $(UV) ] || { $(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip >/dev/null; $(PY) -m pip install -q --upgrade pip uv; }
	@$(UV) pip install -p $(PY) -e ".[libero,dev]"
	@touch $(STAMP)

setup: $(STAMP)
	@$(PY) -m eval_sim.libero_assets setup --quiet

libero-assets: $(STAMP)
	@$(PY) -m eval_sim.libero_assets setup

test: setup
	@$(VENV)/bin/pytest -m "not slow" -q

test-slow: setup
	@$(VENV)/bin/pytest -m slow -q

demo: setup
	@$(PY) scripts/quickstart.py

clean-venv:
	rm -rf $(VENV)
