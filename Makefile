# Keel's entry points. The README's two set-up commands are `make demo` and `make test`.
#
#   make up / down / status   local Kafka + Cassandra (infra/infra.sh; state in .local/)
#   make test                 infrastructure up if needed, lint, then every test
#   make demo                 infrastructure up, services up, the end-to-end scenario narrated
#   make lint                 rustfmt and clippy, warnings as errors
#   make bench                figures next to a raw baseline, in one run (a benchmark, not a test)
#   make fuzz                 every decoder of outside input fed 10 million fuzzed inputs (no servers)

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: up down status build lint test demo bench fuzz

up:
	@bash infra/infra.sh up

down:
	@bash infra/demo.sh stop
	@bash infra/infra.sh down

status:
	@bash infra/infra.sh status

build:
	$(CARGO) build --workspace --all-targets --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Integration tests talk to the servers `up` starts; nothing is skipped when they are down,
# the tests fail instead. The closing `status` shows what they ran against.
test: up lint
	$(CARGO) test --workspace --locked
	@bash infra/infra.sh status

# Infrastructure up, the services built and started (logs in .local/logs), then the
# scenario narrated (infra/demo.sh, `keel demo`); the services keep running until `make down`.
demo: up
	@bash infra/demo.sh

# A benchmark, not a test: release build, figures printed and written to bench/results/.
bench: up
	$(CARGO) run --release --locked -p keel-integration-tests --bin keel-bench

# Every decoder of outside input (command and admin envelopes, events, credentials, record
# headers, query parameters) fed KEEL_FUZZ_INPUTS (10 million) generated and mutated inputs:
# no panic, no hang, memory bounded. Needs no servers; the seed is printed (KEEL_FUZZ_SEED
# repeats a run) and findings' inputs are saved under .local/fuzz/findings/.
fuzz:
	$(CARGO) run --release --locked -p keel-integration-tests --bin keel-fuzz
