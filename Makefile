# Two entry points: `make demo` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
.DEFAULT_GOAL := help

LOCK_HASH := $(shell sha256sum uv.lock | cut -c1-16)
# the virtualenv lives outside the clone, keyed by the lock file (torch from PyPI is several GB)
VENV ?= $(HOME)/.cache/beffroi/venv-$(LOCK_HASH)
export UV_PROJECT_ENVIRONMENT := $(VENV)
export BEFFROI_STATE_DIR ?= $(HOME)/.local/state/beffroi
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: help venv demo test lint typecheck stack-up stack-down stack-status browser bench

help:
	@echo "make demo   - the control tower: a stadium scenario at 8x with cameras, in one process (map on localhost)"
	@echo "make test   - start the real stack (Kafka, Mosquitto, PostgreSQL) and run the whole suite"
	@echo "make bench  - run the benchmarks in bench/ against the real stack"

$(UV):
	python3 -m pip install --user --quiet 'uv>=0.5'

venv: | $(UV)
	$(UV) sync --frozen --quiet
	@ln -sfn $(VENV) $(HOME)/.cache/beffroi/venv

demo: venv
	$(PY) -m tower.cli run --mode embedded --demo

stack-up: venv
	deploy/local/up

browser:
	deploy/local/browser

stack-down:
	deploy/local/down

stack-status:
	deploy/local/status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

test: venv stack-up browser lint typecheck
	source $(BEFFROI_STATE_DIR)/stack.env && $(PY) -m pytest

bench: venv stack-up
	source $(BEFFROI_STATE_DIR)/stack.env && $(PY) -m bench
