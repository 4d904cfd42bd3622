# Switchboard: `make run` runs the whole system locally, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test lint lint-js typecheck pytest clean bench bench-api bench-dialer bench-schedules bench-media bench-turn bench-receipts bench-queue bench-queue-variants bench-coordination bench-webhook bench-latency bench-report soak reliability-report probe probe-report

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

lint: $(STAMP) lint-js ## ruff lint and format check, the layering contracts (import-linter), ESLint over the console
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# ESLint, pinned in tools/jslint/package-lock.json, installed by npm from the registry into the
# ignored tools/jslint/node_modules (needs Node.js 20.19+ and npm, as Debian's nodejs gives).
JSLINT := tools/jslint
$(JSLINT)/node_modules/.installed: $(JSLINT)/package.json $(JSLINT)/package-lock.json
	npm ci --prefix $(JSLINT) --no-audit --no-fund --loglevel=error
	touch $@

lint-js: $(JSLINT)/node_modules/.installed ## ESLint over the console's JavaScript (deploy/nginx/html/app)
	$(JSLINT)/node_modules/.bin/eslint --config $(JSLINT)/eslint.config.js \
		deploy/nginx/html/app tests/browser/api_reads.js

typecheck: $(STAMP) ## mypy (strict) over every Python package: libs, services, devtools, simulators, bench, probe
	$(BIN)/mypy libs services devtools simulators bench probe

pytest: $(STAMP) ## The pytest suite (real PostgreSQL and Redis when reachable; required when CI=true)
	$(BIN)/pytest $(PYTEST_ARGS)

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var

# Benchmarks flush a Redis database of their own, never the tests' (9); PostgreSQL databases
# are created and dropped per run. Each writes bench/results/<name>.json.
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/12
BENCH := BENCH_REDIS_URL=$(BENCH_REDIS_URL) TEST_REDIS_URL=$(BENCH_REDIS_URL) $(BIN)/python -m

bench-dialer: $(STAMP) ## Dialer benchmark: 50 businesses x 3 slots x 20 leads, 1-s calls, median of 3 runs (PostgreSQL + Redis)
	$(BENCH) bench.dialer

bench-schedules: $(STAMP) ## Schedule tick on 100k vs 1M schedules with 1,000 due (PostgreSQL)
	$(BENCH) bench.schedules

bench-media: $(STAMP) ## Media streams at 50 frames/s: most sustained with p99 < 20 ms vs a bare asyncio echo; agent playback pacing at 500
	$(BENCH) bench.media_streams

bench-turn: $(STAMP) ## Voice agent turn latency at 100 calls through the realtime model simulator (model delay subtracted)
	$(BENCH) bench.turn_latency

bench-receipts: $(STAMP) ## Gmail full-sync throughput vs the quota limit; incremental sync API calls per new message
	$(BENCH) bench.receipts

bench-queue: $(STAMP) ## Queue throughput: Switchboard's worker stack vs bare Dramatiq vs RQ on Redis, and vs bare Dramatiq on RabbitMQ
	$(BENCH) bench.queue_throughput

bench-queue-variants: $(STAMP) ## What idle consumers cost: Switchboard's worker three ways vs bare Dramatiq (not in `make bench`)
	$(BENCH) bench.queue_throughput --variants

bench-webhook: $(STAMP) ## Signed Twilio status callbacks through nginx: the calls service vs a bare Flask endpoint
	$(BENCH) bench.webhook_ingest

bench-latency: $(STAMP) ## HTTP request to actor start, p50/p99 at light and heavy load
	$(BENCH) bench.enqueue_latency

bench-coordination: $(STAMP) ## (not in `make bench`) Leader lock and CPS limiter in Redis vs PostgreSQL (advisory lock, GCRA row)
	$(BENCH) bench.coordination

bench-api: $(STAMP) ## The api's schema layer per request: spectree vs flask-openapi3 vs flask-pydantic vs hand-written, and the whole request
	$(BENCH) bench.api_layers

bench-report: $(STAMP) ## Regenerate docs/benchmarks.md (tables, targets, plots) from bench/results/*.json
	$(BENCH) bench.report

reliability-report: $(STAMP) ## Render the last chaos run (var/test-results/chaos.json) into docs/reliability.md
	$(BIN)/python -m tests.support.chaos

probe: $(STAMP) ## Probe the embedded stack from outside (isolation, auth, bad input, webhooks, secrets); writes var/test-results/probe.json
	$(BIN)/python -m probe $(PROBE_ARGS)

probe-report: $(STAMP) ## Render the last probe (var/test-results/probe.json) into docs/reliability.md
	$(BIN)/python -m probe.report

soak: $(STAMP) ## 15 minutes of mixed load; fails if a process's memory or descriptors keep growing
	$(BIN)/python -m bench.soak --minutes 15

# One after another (each measures a machine the others leave idle), then the report.
bench: bench-queue bench-webhook bench-latency bench-dialer bench-schedules bench-media bench-turn bench-receipts bench-api ## Every benchmark, then docs/benchmarks.md (under 15 minutes on 2 cores)
	$(BENCH) bench.report
