# Bramble — see README.md. `make help` lists the targets.
SHELL := /bin/bash
FUZZ_SECONDS ?= 60

.PHONY: help deps build up status down logs drill test test-unit test-integration test-cluster fuzz bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

deps: ## Install the Debian packages Bramble needs (PostgreSQL 15, Patroni, etcd, Dovecot, Postfix, iproute2, nftables, jq, systemd-analyze, zlib, OpenSSL headers)
	@source scripts/lib.sh && source scripts/ha-db.sh && source scripts/mail.sh && ensure_ha_packages && ensure_mail_packages

build: deps ## Build every product (debug)
	swift build

up: ## Install what is missing, build (release), start the cluster: hosts as network namespaces, etcd ×3, PostgreSQL ×2 under Patroni, relay, an HA pair, demo devices, a mail host (Postfix, Dovecot)
	@deploy/cluster up

status: ## Print the local cluster as JSON (hosts, database, etcd, pair, relay, nodes, devices, mail, processes)
	@deploy/cluster status --json

down: ## Stop everything `make up` started (by PID); remove its namespaces, bridge and temp dirs
	@deploy/cluster down

logs: ## List the cluster's logs (`deploy/cluster logs NAME [-f]` prints one)
	@deploy/cluster logs

test: deps ## Install what is missing and run every test (unit, integration, clustered, the short failover drills)
	swift build --build-tests
	swift test --no-parallel

test-unit: ## Run the pure-core unit tests only
	swift test --filter BrambleCoreTests

test-integration: deps ## Run the integration tests (real PostgreSQL, relay, node, devices)
	swift build --build-tests
	swift test --no-parallel --filter BrambleIntegrationTests

test-cluster: deps ## Run the HA pair and deploy tests (real nodes: kill, pause, cut, switch over; deploy/cluster smoke test)
	swift build --build-tests
	swift test --no-parallel --filter BrambleClusterTests

drill: ## Run the short set of failover drills against the cluster `make up` started (chaos/README.md)
	chaos/drill short --duration 12

fuzz: ## Fuzz the frame, envelope, payload, notification and IMAP response decoders for FUZZ_SECONDS (default 60) with libFuzzer
	swift build --product bramble-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DBRAMBLE_FUZZ
	@mkdir -p fuzz-corpus
	.build-fuzz/debug/bramble-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 fuzz-corpus

bench: deps ## Envelope vs raw zlib+AES, end-to-end pushes/s and latency, pair and database failover (release build)
	swift build -c release
	scripts/bench

clean: ## Remove build products
	rm -rf .build .build-fuzz
