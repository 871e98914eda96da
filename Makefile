# Takumo Audit. `make run` starts the single binary; `make test` runs the whole suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

MODULES := schemas producer platform ingestor query auditd siem-forwarder webhook-dispatcher auditctl
BIN     := $(CURDIR)/bin
GO      ?= go
# The embedded ClickHouse library lives in a cache outside the repository.
CHDB_LIB = $(shell scripts/fetch-chdb.sh)

export AUDIT_HTTP_ADDR ?= 127.0.0.1:8080
export AUDIT_DATA_DIR  ?= $(CURDIR)/data


.PHONY: all run build chdb test vet staticcheck fmt-check build-standalone bench bench-compare bench-cluster faults clean

all: build

## chdb: fetch and verify the embedded ClickHouse library (idempotent).
chdb:
	@scripts/fetch-chdb.sh >/dev/null

## build: build every binary into ./bin.
build:
	@mkdir -p $(BIN)
	cd auditd && $(GO) build -o $(BIN)/auditd .
	cd ingestor && $(GO) build -o $(BIN)/ingestor ./cmd/ingestor
	cd query && $(GO) build -o $(BIN)/query ./cmd/query
	cd siem-forwarder && $(GO) build -o $(BIN)/siem-forwarder ./cmd/siem-forwarder
	cd webhook-dispatcher && $(GO) build -o $(BIN)/webhook-dispatcher ./cmd/webhook-dispatcher
	cd auditctl && $(GO) build -o $(BIN)/auditctl .

## run: fetch what is missing, build and start auditd on http://$(AUDIT_HTTP_ADDR).
run: chdb build
	AUDIT_CHDB_LIB="$(CHDB_LIB)" AUDIT_DEMO="$${AUDIT_DEMO:-true}" $(BIN)/auditd

## test: formatting, vet, standalone module builds and every module's tests
## against the embedded NATS server and the embedded ClickHouse engine, two
## modules at a time (AUDIT_TEST_JOBS), the longest (auditd) first.
test: chdb chromium fmt-check vet staticcheck build-standalone
	@scripts/ensure-rsyslog.sh
	@AUDIT_CHDB_LIB="$(CHDB_LIB)" GO="$(GO)" scripts/test-modules.sh auditd $(filter-out auditd,$(MODULES))

vet:
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

## staticcheck: the pinned staticcheck over every module (installed once
## into the cache outside the repository).
staticcheck:
	@sc="$$(scripts/ensure-staticcheck.sh)"; for m in $(MODULES); do (cd $$m && "$$sc" ./...) || exit 1; done

fmt-check:
	@out="$$(gofmt -l $(MODULES))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## build-standalone: every module builds on its own, without go.work.
build-standalone:
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) build ./... && GOWORK=off $(GO) vet ./...) || exit 1; done

## bench: producer vs raw JetStream publish, recovery after a broker restart,
## the end-to-end pipeline (alone, and alternated with the tree before first
## write wins: bench-compare), the pipeline on a 3-node cluster (R3) next to a
## single server (R1), and the transparency log (bench-tlog).
bench: chdb
	cd producer && $(GO) test -run '^$$' -bench 'EmitAsyncVsRaw|Prepare' -benchtime 200000x ./...
	cd producer && $(GO) test -run '^$$' -bench BrokerRestart -benchtime 1x ./...
	cd platform && $(GO) test -run '^$$' -bench IngestHTTP -benchtime 100000x ./ingestapi/
	cd auditd && AUDIT_CHDB_LIB="$(CHDB_LIB)" $(GO) test -run '^$$' -bench 'EndToEnd$$' -benchtime 1x -timeout 30m ./...
	$(MAKE) --no-print-directory bench-compare
	$(MAKE) --no-print-directory bench-cluster
	$(MAKE) --no-print-directory bench-tlog

## bench-compare: the end-to-end rate of this tree next to an older
## revision's (BENCH_BASE, default the tree before the authenticated bus and
## first write wins), built side by side and run alternately on this
## machine (BENCH_ROUNDS rounds of BENCH_EVENTS events); prints the medians
## and the cost.
BENCH_BASE   ?= e9a5fbf
BENCH_ROUNDS ?= 5
BENCH_EVENTS ?= 300000
bench-compare: chdb
	scripts/bench-compare.sh $(BENCH_BASE) $(BENCH_ROUNDS) $(BENCH_EVENTS)

## bench-cluster: end-to-end rate on a 3-node NATS cluster with R3 streams
## next to a single server with R1, in the same run.
bench-cluster: chdb
	cd auditd && AUDIT_CHDB_LIB="$(CHDB_LIB)" $(GO) test -run '^$$' -bench 'EndToEndCluster$$' -benchtime 1x -timeout 30m ./e2e/

## faults: the fault-injection suite's long form — the 3-node cluster
## scenarios, broker restarts, a store outage, a full stream, dead and slow
## webhook and SIEM receivers, producer clock jumps, and kill -9 of the
## auditd binary under load — writing its table into docs/faults.md.
## make test runs the quick form (everything but the kill -9).
faults: chdb
	cd auditd && AUDIT_CHDB_LIB="$(CHDB_LIB)" AUDIT_FAULTS_LONG=1 AUDIT_FAULTS_REPORT="$(CURDIR)/docs/faults.md" \
		$(GO) test -count=1 -timeout 20m -run '^(TestClusterFaults|TestFault.*)$$' -v ./e2e/ | grep -E '^(---|ok|FAIL|panic)|_test.go:'

## bench-tlog: the transparency log (docs/integrity.md, "Measured"): the log
## writer alone over 100,000 events; the pipeline without and with sealing in
## the ingestor (sealed/unsealed, alternated in one process); checkpoint latency at the 10s and 1s
## intervals; 10,000 orgs at once, one with a 10,000,000-event tree; an
## integrity export of 10,000 entries on a running auditd; and inclusion
## proofs at 10,000,000 events. That tree is generated once into
## $(TLOG_BENCH_DIR) (about 1.3 GB), so reruns skip it.
TLOG_BENCH_DIR ?= $(or $(AUDIT_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/takumo-audit)/bench/tlog
.PHONY: bench-tlog
bench-tlog: chdb
	cd platform && AUDIT_CHDB_LIB="$(CHDB_LIB)" $(GO) test -count=1 -run '^$$' -bench '^BenchmarkWriter$$' -benchtime 100000x ./tlog/logwriter/
	cd platform && $(GO) test -count=1 -run '^$$' -bench '^(BenchmarkLeaf|BenchmarkHasher|BenchmarkHasherFrom)$$' -benchmem -benchtime 200000x ./tlog/
	cd auditd && AUDIT_CHDB_LIB="$(CHDB_LIB)" $(GO) test -count=1 -run '^$$' \
		-bench '^(BenchmarkSealing|BenchmarkCheckpointLatency|BenchmarkSealingManyOrgs)$$' -benchtime 1x -timeout 60m ./e2e/
	cd auditd && AUDIT_CHDB_LIB="$(CHDB_LIB)" $(GO) test -count=1 -run '^$$' -bench '^BenchmarkIntegrityExport$$' -benchtime 3x ./internal/app/
	mkdir -p "$(TLOG_BENCH_DIR)"
	cd platform && AUDIT_CHDB_LIB="$(CHDB_LIB)" AUDIT_TLOG_BENCH_DIR="$(TLOG_BENCH_DIR)" \
		$(GO) test -count=1 -run '^$$' -bench '^BenchmarkInclusion10M$$' -benchtime 1x -timeout 60m ./tlog/tlogapi/

clean:
	rm -rf $(BIN)

## bench-query: the query service's large runs (not part of make test):
## export of 1,000,000 events with peak RSS, then p50/p99 of four reads over
## 10,000,000 events in 1,000 orgs. The generated data is kept in
## $(QUERY_BENCH_DIR), so reruns skip the ~2-minute load.
QUERY_BENCH_DIR ?= $(or $(AUDIT_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/takumo-audit)/bench/query
.PHONY: bench-query
bench-query: chdb
	cd query && AUDIT_CHDB_LIB="$(CHDB_LIB)" AUDIT_QUERY_BENCH_DIR="$(QUERY_BENCH_DIR)" AUDIT_EXPORT_1M=1 \
		$(GO) test -count=1 -run '^TestExportMillion$$' -bench '^BenchmarkQuery10M$$' -benchtime 1x -timeout 60m -v .

## chromium: Debian's chromium for the log page's browser test (idempotent;
## a no-op when /usr/bin/chromium exists).
.PHONY: chromium screenshots
chromium:
	@scripts/ensure-chromium.sh

## screenshots: regenerate the log page's screenshots (desktop 1280x800,
## phone 390x844) into docs/screenshots/ with the browser tests: the log
## (query), the settings screens and the integrity column (auditd, with the
## management and integrity APIs).
screenshots: chdb chromium
	@mkdir -p docs/screenshots
	cd query && AUDIT_CHDB_LIB="$(CHDB_LIB)" AUDIT_SCREENSHOTS_DIR="$(CURDIR)/docs/screenshots" \
		$(GO) test -count=1 -run '^(TestLogPageInBrowser|TestLogPageIsolatesBidiText)$$' -v . | grep -E '^(---|ok|FAIL)|screenshots'
	cd auditd && AUDIT_CHDB_LIB="$(CHDB_LIB)" AUDIT_SCREENSHOTS_DIR="$(CURDIR)/docs/screenshots" \
		$(GO) test -count=1 -run '^(TestSettingsPageInBrowser|TestLogPageVerifiesEntriesInBrowser)$$' -v ./internal/app/ | grep -E '^(---|ok|FAIL)'

