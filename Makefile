# The README's two commands:
#   go run ./cmd/spanpipe dev --demo 1000 --exit-when-done
#   make test
GO ?= go
SHELL := /bin/bash
GOTESTFLAGS ?= -timeout 20m

.PHONY: test unit race deps-check vet build bench bench-smoke fuzz sql-check rules-check integration deploy-check image

# Everything but the real-broker suite, which has its own target (and time budget).
UNIT_PKGS = $$($(GO) list ./... | grep -v /integration)

## test: everything CI runs: vet, the producer import check, unit and race tests, the
## ClickHouse SQL on chdb, the Prometheus rules with promtool, the real-Kafka
## integration suite, and a smoke-sized `spanpipe bench`.
test: vet deps-check unit race sql-check rules-check integration bench-smoke

build:
	$(GO) build -buildvcs=true -o bin/spanpipe ./cmd/spanpipe

vet:
	$(GO) vet ./...

## deps-check: applications import producer/; it must never pull in a sink (cgo DuckDB,
## ClickHouse) or test infrastructure.
deps-check:
	@bad=$$($(GO) list -deps ./producer/... | grep -E 'duckdb|clickhouse|testcontainers|spanpipe/sinks|spanpipe/pipeline|spanpipe/consumer' || true); \
	if [ -n "$$bad" ]; then echo "producer/ must not depend on:"; echo "$$bad"; exit 1; fi; \
	echo "deps-check: producer/ is free of sinks"

unit:
	$(GO) test $(GOTESTFLAGS) -shuffle=on $(UNIT_PKGS)

## integration: real `spanpipe` processes against a real Apache Kafka (KAFKA_BROKERS,
## else testcontainers when Docker answers, else deploy/local/kafka.sh). -v prints each
## scenario's FIGURES line. Scenario sizes: SPANPIPE_IT_* (see integration/doc.go).
integration:
	@set -o pipefail; rc=0; \
	$(GO) test -timeout 30m -count=1 -v ./integration/ > integration.log 2>&1 || rc=$$?; \
	grep -E '^(--- |\s+--- |PASS|FAIL|ok)|FIGURES|SKIP' integration.log; \
	if [ $$rc -ne 0 ]; then echo "== integration failed (rc=$$rc); last 400 lines of integration.log:"; tail -n 400 integration.log; fi; \
	exit $$rc

## sql-check: every ClickHouse statement the sink issues, run on chdb (pip install chdb).
sql-check:
	bash sinks/clickhouse/testdata/chdb_check.sh

## rules-check: promtool check rules + promtool test rules (Debian's prometheus package).
rules-check:
	bash deploy/prometheus/check.sh

## bench-smoke: a tiny `spanpipe bench` so that the command cannot rot.
bench-smoke:
	$(GO) run ./cmd/spanpipe bench --spans 5000 --latency-seconds 2 --out "" --db-dir "$${TMPDIR:-/tmp}"

## race: the packages with concurrency, under the race detector (DuckDB's cgo build is
## left out: it takes minutes to build with -race and has no Go concurrency of its own).
race:
	$(GO) test $(GOTESTFLAGS) -race -shuffle=on ./producer/... ./consumer/... ./pipeline/... ./dropalerts/... ./schema/... ./internal/app/...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: each fuzz target for a short while.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./schema/
	$(GO) test -run '^$$' -fuzz FuzzRedactJSON -fuzztime 30s ./producer/

## deploy-check: the Helm chart (helm lint/template, built from the module proxy), the
## compose file, the Grafana dashboard and the Dockerfile, checked without Docker or
## Kubernetes (deploy/*_test.go; also part of `unit`).
deploy-check:
	$(GO) test -count=1 -v ./deploy/

## image: the container image (needs Docker); labels carry the version and commit that
## `spanpipe version` prints.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t spanpipe:$(VERSION) .
