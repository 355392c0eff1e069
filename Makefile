# crowd — developer entry points.
#
# Must work on a fresh Debian machine that has only python3 (+pip, venv), node/npm and make:
# every tool the targets need (the venv, redis-server, buf) is installed by a target here.
#
#   make venv         create .venv and install the project editable with the dev extra
#   make redis-server install Debian's redis-server (+ redis-cli) if not on PATH
#   make buf          install the pinned buf CLI into tools/node_modules
#   make proto        regenerate Python code from protos/ into clients/python
#   make proto-check  fail if the committed generated code differs from a fresh generation
#   make buf-lint     buf lint (protos/buf.yaml)
#   make lint         ruff check + ruff format --check + mypy + import contracts + buf-lint +
#                     proto-check
#   make import-lint  lint-imports: which package may import which (docs/architecture.md)
#   make test         venv + redis-server + lint, then pytest (extra args: PYTEST_ARGS=...)
#   make bench        run the benchmarks (python -m bench)
#   make run          run the demo stack in the foreground (python -m demo); Ctrl-C stops it
#   make clean        remove the venv, tool installs and caches

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
# The stamp is rebuilt whenever pyproject.toml changes (new dependency, new pin).
VENV_STAMP := $(VENV)/.installed
BUF := tools/node_modules/.bin/buf
PYTEST_ARGS ?=

# apt-get needs root: use sudo when we are not root (CI and dev machines here run as root).
SUDO := $(shell if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)

# Only our own protos are compiled/linted; the targets skip cleanly while none exist yet.
PROTO_FILES := $(shell find protos/crowd -name '*.proto' 2>/dev/null | sort)

.PHONY: help venv redis-server buf proto proto-check buf-lint import-lint lint test bench run clean

help:
	@sed -n '3,19p' Makefile | sed 's/^# \{0,1\}//'

# --- Python environment -------------------------------------------------------------------------

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	@# The pip bundled with Python 3.11 (23.x) backtracks badly on the OpenTelemetry contrib
	@# packages (exact inter-package pins) and reports ResolutionImpossible; a current pip resolves.
	$(VENV_PY) -m pip install --disable-pip-version-check -q --upgrade 'pip>=25'
	$(VENV_PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $@

# --- System and tool dependencies ---------------------------------------------------------------

# Tests start their own redis-server processes on free loopback ports, so all we need is the
# binary, plus redis-cli (Debian's redis-tools) with which the harness creates a Redis Cluster.
# Debian's package may also start a system service on 6379: harmless, tests never use it.
redis-server:
	@if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then \
		echo "redis-server: $$(redis-server --version | head -n1)"; \
	else \
		echo "redis-server or redis-cli not found: installing Debian's redis-server and redis-tools"; \
		$(SUDO) apt-get update -q; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends redis-server redis-tools; \
		command -v redis-server >/dev/null || { echo "redis-server install failed" >&2; exit 1; }; \
		command -v redis-cli >/dev/null || { echo "redis-cli install failed" >&2; exit 1; }; \
	fi

buf: $(BUF)

# buf comes from npm (@bufbuild/buf ships the binary in a per-platform package), pinned exactly in
# tools/package.json and tools/package-lock.json. `npm install --no-save` rather than `npm ci`:
# the lock only records the platform packages the registry here serves (linux x64/aarch64), and
# `npm ci` rejects such a lock as out of sync; `install` honours the lock and --no-save keeps it
# untouched.
$(BUF): tools/package.json tools/package-lock.json
	npm install --prefix tools --no-save --no-audit --no-fund --loglevel=error
	test -x $@
	touch $@

# --- Protobuf -----------------------------------------------------------------------------------

# Generation logic lives in scripts/gen_protos.py (deterministic file order, pinned grpcio-tools
# and mypy-protobuf from the venv, __init__.py in each generated package, never overwriting one).
proto: $(VENV_STAMP)
	$(VENV_PY) scripts/gen_protos.py clients/python

proto-check: $(VENV_STAMP)
ifeq ($(strip $(PROTO_FILES)),)
	@echo "proto-check: no .proto files under protos/crowd yet, skipping"
else
	$(VENV_PY) scripts/gen_protos.py --check clients/python
endif

buf-lint: $(BUF)
ifeq ($(strip $(PROTO_FILES)),)
	@echo "buf-lint: no .proto files under protos/crowd yet, skipping"
else
	cd protos && ../$(BUF) lint
endif

# --- Quality gates ------------------------------------------------------------------------------

# The import contracts ([tool.importlinter] in pyproject.toml): clients import no service, the
# services do not import each other, the shared layer and the sandbox import no service, no import
# cycles inside a package. --no-cache: the check takes well under a second and leaves nothing in
# the tree.
import-lint: $(VENV_STAMP)
	$(VENV)/bin/lint-imports --no-cache --no-logo

# Generated *_pb2* files are excluded from ruff in pyproject.toml; mypy's file list and overrides
# are there too.
lint: $(VENV_STAMP) buf
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(MAKE) --no-print-directory import-lint
	$(MAKE) --no-print-directory buf-lint
	$(MAKE) --no-print-directory proto-check

test: $(VENV_STAMP) redis-server lint
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# --- Running ------------------------------------------------------------------------------------

bench: $(VENV_STAMP) redis-server
	$(VENV_PY) -m bench

# Foreground: the demo runner owns its child processes (pids/logs under .run/, or
# $CROWD_DEMO_RUN_DIR) and stops them all on SIGINT (Ctrl-C), SIGTERM or SIGHUP; a child that
# dies ends it with status 1. `exec`: the runner replaces the recipe's shell, so it is make's own
# child. make forwards SIGTERM to it; on a SIGINT or SIGHUP sent to make alone, make only waits
# for its child, and the runner notices that and stops (demo/stop_requests.py).
# RUN_ARGS passes options, e.g. `make run RUN_ARGS=--exit`.
RUN_ARGS ?=
run: $(VENV_STAMP) redis-server
	exec $(VENV_PY) -m demo $(RUN_ARGS)

clean:
	rm -rf $(VENV) tools/node_modules .run build dist *.egg-info clients/python/*.egg-info
	rm -rf .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -not -path './.git/*' -prune -exec rm -rf {} +
