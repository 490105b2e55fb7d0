# Bramble — see README.md. `make help` lists the targets.
SHELL := /bin/bash
# Fuzzing (`make fuzz`, `make fuzz-short`): libFuzzer targets in bramble-fuzz, one per decoder
# family, each with its seeds in Tests/FuzzCorpus/TARGET and its working corpus in
# fuzz-corpus/TARGET (gitignored). FUZZ_SECONDS and FUZZ_RUNS bound each target's run
# (FUZZ_SECONDS=0: no time bound); FUZZ_TARGETS picks targets.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS ?= frames envelope payloads imap mime settings smtp notify xmpp activation
FUZZ_MAX_LEN ?= 4096
FUZZ_NICE ?= 10
FUZZ_SHORT_RUNS ?= 20000
FUZZ_SHORT_SECONDS ?= 30
FUZZ_BIN := .build-fuzz/release/bramble-fuzz
# libFuzzer reports crashes itself; the Swift runtime's backtracer would hold the process.
FUZZ_ENV := SWIFT_BACKTRACE=enable=no
FUZZ_FLAGS := -max_len=$(FUZZ_MAX_LEN) -timeout=25 -print_final_stats=1

.PHONY: help deps build up status down logs drill test test-unit test-integration test-cluster fuzz fuzz-short fuzz-build fuzz-seeds bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

deps: ## Install the Debian packages Bramble needs (PostgreSQL 15, Patroni, etcd, Dovecot, Postfix, Prosody, Prometheus, iproute2, nftables, jq, systemd-analyze, zlib, OpenSSL headers)
	@source scripts/lib.sh && source scripts/ha-db.sh && source scripts/mail.sh && source scripts/im.sh && source scripts/monitoring.sh && ensure_ha_packages && ensure_mail_packages && ensure_im_packages && ensure_monitoring_packages

build: deps ## Build every product (debug)
	swift build

up: ## Install what is missing, build (release), start the cluster: hosts as network namespaces, etcd ×3, PostgreSQL ×2 under Patroni, relay, an HA pair, demo devices, a mail host (Postfix, Dovecot), an IM host (Prosody), a monitoring host (Prometheus)
	@deploy/cluster up

status: ## Print the local cluster as JSON (hosts, database, etcd, pair, relay, nodes, devices, mail, im, monitoring, processes)
	@deploy/cluster status --json

down: ## Stop everything `make up` started (by PID); remove its namespaces, bridge and temp dirs
	@deploy/cluster down

logs: ## List the cluster's logs (`deploy/cluster logs NAME [-f]` prints one)
	@deploy/cluster logs

test: deps ## Install what is missing and run every test (unit, integration, clustered, the short failover drills), then `make fuzz-short`
	swift build --build-tests
	swift test --no-parallel
	$(MAKE) fuzz-short

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

fuzz: fuzz-build ## Fuzz every decoder family (FUZZ_TARGETS) for FUZZ_SECONDS each (default 60; or FUZZ_RUNS executions) with libFuzzer
	@$(call fuzz-each,fuzz-corpus,-max_total_time=$(FUZZ_SECONDS) $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS)))

fuzz-short: fuzz-build ## Each fuzz target on its committed seeds plus FUZZ_SHORT_RUNS (20000) mutations: part of `make test`
	@rm -rf .build-fuzz/short-corpus
	@$(call fuzz-each,.build-fuzz/short-corpus,-runs=$(FUZZ_SHORT_RUNS) -max_total_time=$(FUZZ_SHORT_SECONDS))

fuzz-build: ## Build bramble-fuzz with libFuzzer and AddressSanitizer (release, in .build-fuzz)
	@echo "building bramble-fuzz (-sanitize=fuzzer,address) in .build-fuzz"
	@set -o pipefail; swift build -c release --product bramble-fuzz --scratch-path .build-fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -DBRAMBLE_FUZZ 2>&1 | { grep -v 'warning: Cannot export local symbol' || true; }

fuzz-seeds: fuzz-build ## Rewrite the seeds made with the library's encoders (frames, envelope, payloads) in Tests/FuzzCorpus
	$(FUZZ_ENV) BRAMBLE_FUZZ_WRITE_SEEDS=Tests/FuzzCorpus $(FUZZ_BIN)

# $(call fuzz-each,CORPUS_ROOT,BOUNDS): runs each of FUZZ_TARGETS in turn on CORPUS_ROOT/TARGET
# (where new inputs go) and its committed seeds; prints a line before and the final stats
# after; a finding stops it, with the log's end and the crashing input in fuzz-corpus/crashes.
define fuzz-each
mkdir -p fuzz-corpus/crashes fuzz-corpus/logs; \
for t in $(FUZZ_TARGETS); do \
	mkdir -p $(1)/$$t; log=fuzz-corpus/logs/$$t.log; start=$$(date +%s.%N); \
	echo "fuzz $$t: $(2) on $(1)/$$t ($$(ls $(1)/$$t | wc -l) inputs) + Tests/FuzzCorpus/$$t ($$(ls Tests/FuzzCorpus/$$t | wc -l) seeds)"; \
	if ! $(FUZZ_ENV) BRAMBLE_FUZZ_TARGET=$$t nice -n $(FUZZ_NICE) $(FUZZ_BIN) $(FUZZ_FLAGS) $(2) \
		-artifact_prefix=fuzz-corpus/crashes/$$t- $(1)/$$t Tests/FuzzCorpus/$$t > $$log 2>&1; then \
		tail -n 40 $$log; echo "fuzz $$t: FINDING: the input is in fuzz-corpus/crashes/$$t-*, the log in $$log"; exit 1; \
	fi; \
	awk -v t=$$t -v a=$$start -v b=$$(date +%s.%N) -v n=$$(ls $(1)/$$t | wc -l) \
		'/DONE/ { d = $$0 } /stat::number_of_executed_units/ { r = $$2 } /stat::peak_rss_mb/ { m = $$2 } \
		END { match(d, /cov: [0-9]+ ft: [0-9]+ corp: [^ ]+/); \
		printf "fuzz %s: no finding: %d runs in %.1f s (%d exec/s), %s (%d files), peak RSS %s MB\n", \
			t, r, b - a, r / (b - a), substr(d, RSTART, RLENGTH), n, m }' $$log; \
done
endef

bench: deps ## Envelope vs raw zlib+AES, end-to-end pushes/s and latency, pair and database failover (release build)
	swift build -c release
	scripts/bench

clean: ## Remove build products
	rm -rf .build .build-fuzz
