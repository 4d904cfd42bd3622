# Switchboard: `make run` runs the whole system locally, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck pytest clean bench bench-dialer bench-schedules bench-media bench-receipts soak

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet --requirement requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $(STAMP)

run: $(STAMP) ## Run api, calls, worker and scheduler on embedded defaults (SQLite, embedded Redis)
	$(BIN)/switchboard run

test: $(STAMP) lint typecheck pytest ## Lint, type-check and run the whole test suite

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy on libs/common
	$(BIN)/mypy libs/common

pytest: $(STAMP) ## The pytest suite (real PostgreSQL and Redis when reachable; required when CI=true)
	$(BIN)/pytest $(PYTEST_ARGS)

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var

bench-dialer: $(STAMP) ## Dialer benchmark: 50 businesses x 3 slots x 20 leads, 1-s calls (PostgreSQL + Redis)
	$(BIN)/python -m bench.dialer

bench-schedules: $(STAMP) ## Schedule tick on 100k vs 1M schedules with 1,000 due (PostgreSQL)
	$(BIN)/python -m bench.schedules

bench-media: $(STAMP) ## Media streams at 50 frames/s: most sustained with p99 < 20 ms vs a bare echo WebSocket
	$(BIN)/python -m bench.media_streams

bench-receipts: $(STAMP) ## Gmail full-sync throughput vs the quota limit; incremental sync API calls per new message
	$(BIN)/python -m bench.receipts

soak: $(STAMP) ## 15 minutes of mixed load; fails if a process's memory or descriptors keep growing
	$(BIN)/python -m bench.soak --minutes 15

bench: bench-dialer bench-schedules bench-media bench-receipts ## Every benchmark
