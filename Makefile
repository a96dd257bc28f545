# otel-health: `make run` and `make test` set themselves up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.dev-stamp
PYTEST_ARGS ?=
# Two workers side by side, a test file to each at a time (tests/conftest.py); XDIST= runs them in one process.
XDIST ?= -n 2 --dist loadfile

.PHONY: run test deps venv lock reference stack lint unit integration clean bench bench-scale bench-deps profile dashboards soak status-screenshot

# Installs come from the lock files (scripts/lock.sh writes them from pyproject.toml's ranges):
# `make run` gets the runtime only, the test targets the test tools too.
$(RUNTIME_STAMP): pyproject.toml requirements/runtime.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/runtime.txt
	@# setuptools prints a notice box for every editable install; the install itself is silent
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

$(STAMP): $(RUNTIME_STAMP) requirements/dev.txt
	$(BIN)/python -m pip install -q -r requirements/dev.txt
	@touch $@

venv: $(STAMP)

## Re-resolve the lock files (LOCK_ARGS=--upgrade for the newest versions the ranges allow).
lock: $(RUNTIME_STAMP)
	PYTHON=$(BIN)/python scripts/lock.sh $(LOCK_ARGS)

## Run the collector (CONFIG=file.yaml to use your own; without it, a built-in default).
run: $(RUNTIME_STAMP)
	$(BIN)/otel-health run $(if $(CONFIG),--config $(CONFIG))

## The whole pipeline without Docker: otel-health, the Collector, Jaeger, Prometheus with the
## shipped rules and Alertmanager, on ports that do not collide; Ctrl-C stops it all.
## CONFIG=file.yaml for your targets; STACK_ARGS="--for 10s" to see alerts fire soon.
stack: deps
	$(BIN)/python scripts/stack.py $(if $(CONFIG),--config $(CONFIG)) $(STACK_ARGS)

## Install Debian packages and build the real components the tests use (cached).
deps: $(STAMP)
	scripts/deps.sh

lint: $(STAMP)
	$(BIN)/ruff check otel_health tests benchmarks monitoring scripts
	$(BIN)/mypy

## Lint, type-check and run every test (unit and integration against real servers).
test: deps lint
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: deps
	$(BIN)/pytest tests/integration $(XDIST) $(PYTEST_ARGS)

## Benchmarks (own targets: they take minutes and want a quiet machine).
bench-deps: deps
	scripts/deps.sh --bench
	$(BIN)/python -m pip install -q -r requirements/bench.txt

bench: bench-deps
	$(BIN)/python -m benchmarks.http_clients
	$(BIN)/python -m benchmarks.metrics_render
	$(BIN)/python -m benchmarks.bench_suppression
	$(BIN)/python -m benchmarks.status_page
	$(BIN)/python -m benchmarks.bench_datastores
	$(BIN)/python -m benchmarks.bench_http
	$(BIN)/python -m benchmarks.bench_match
	$(BIN)/python -m benchmarks.bench_assertions
	$(BIN)/python -m benchmarks.bench_tls

bench-scale: bench-deps
	$(BIN)/python -m benchmarks.bench_scale --seconds 320
	$(BIN)/python -m benchmarks.bench_scale --targets 20000 --otlp --seconds 90
	$(BIN)/python -m benchmarks.memory_per_target --otlp
	$(BIN)/python -m benchmarks.churn
	$(BIN)/python -m benchmarks.discovery_memory
	$(BIN)/python -m benchmarks.collector_capacity
	$(BIN)/python -m benchmarks.collector_capacity --keep 0

## The README's picture of the status page (docs/status-page.png), from a short demo run in headless Chromium.
status-screenshot: deps
	$(BIN)/python scripts/status_screenshot.py

## Where an HTTP check's CPU goes (py-spy under load).
profile: bench-deps
	$(BIN)/python -m benchmarks.profile_http

## A 30-minute run with faults mixed in: memory and descriptors must stay flat.
soak: deps
	$(BIN)/python -m benchmarks.soak

## Rewrite docs/configuration.md from the loader's own fields and docs/fields.yaml.
reference: $(RUNTIME_STAMP)
	$(BIN)/python scripts/config_reference.py

## Regenerate the Grafana dashboards from monitoring/grafana/dashboards.py.
dashboards: $(STAMP)
	$(BIN)/python monitoring/grafana/dashboards.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
