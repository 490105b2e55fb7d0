# Bramble — see README.md. `make help` lists the targets.
SHELL := /bin/bash
FUZZ_SECONDS ?= 60

.PHONY: help deps build up status down test test-unit test-integration test-cluster fuzz bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

deps: ## Install the Debian packages Bramble needs (PostgreSQL 15, zlib, OpenSSL headers)
	@source scripts/lib.sh && ensure_packages

build: deps ## Build every product (debug)
	swift build

up: ## Install what is missing, build (release), start PostgreSQL, relay, an HA pair of nodes and a demo device
	@scripts/cluster up

status: ## Print the local cluster as JSON (nodes, admin_token, devices, processes)
	@scripts/cluster status

down: ## Stop everything `make up` started and remove its temp dirs
	@scripts/cluster down

test: deps ## Install what is missing and run every test (unit, integration, clustered)
	swift build --build-tests
	swift test --no-parallel

test-unit: ## Run the pure-core unit tests only
	swift test --filter BrambleCoreTests

test-integration: deps ## Run the integration tests (real PostgreSQL, relay, node, devices)
	swift build --build-tests
	swift test --no-parallel --filter BrambleIntegrationTests

test-cluster: deps ## Run the HA pair tests (two real nodes: kill, pause, cut, switch over)
	swift build --build-tests
	swift test --no-parallel --filter BrambleClusterTests

fuzz: ## Fuzz the frame, envelope, payload and notification decoders for FUZZ_SECONDS (default 60) with libFuzzer
	swift build --product bramble-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DBRAMBLE_FUZZ
	@mkdir -p fuzz-corpus
	.build-fuzz/debug/bramble-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 fuzz-corpus

bench: deps ## Envelope vs raw zlib+AES, end-to-end pushes/s and latency, failover outage (release build)
	swift build -c release
	scripts/bench

clean: ## Remove build products
	rm -rf .build .build-fuzz
