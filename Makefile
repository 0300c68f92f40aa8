# The README's two commands:
#   go run ./cmd/spanpipe dev --demo 1000 --exit-when-done
#   make test
GO ?= go
SHELL := /bin/bash
GOTESTFLAGS ?= -timeout 20m

.PHONY: test unit race deps-check vet build bench bench-smoke fuzz sql-check rules-check integration clickhouse-local mastra browser-test screenshots chromium deploy-check image

# Everything but the real-broker suite, which has its own target (and time budget).
UNIT_PKGS = $$($(GO) list ./... | grep -v /integration)

## test: everything CI runs: vet, the producer import check, unit and race tests (the
## ClickHouse sink's against a real server), the ClickHouse SQL on chdb, the Prometheus
## rules with promtool, the TypeScript Mastra client, the real-Kafka and
## real-ClickHouse integration suite (which drives that client too), and a smoke-sized
## `spanpipe bench`.
test: vet deps-check clickhouse-local unit race sql-check rules-check mastra integration bench-smoke browser-test

## clickhouse-local: installs the local ClickHouse server (deploy/local/clickhouse.sh:
## a venv with the pinned chdb-core, python3-venv from apt when missing; ~1-2 min and
## ~900 MB once, a second when installed). The sink tests, the integration suite and
## `spanpipe bench --sink clickhouse` start servers from it when CLICKHOUSE_DSN is
## not set and no Docker engine answers.
clickhouse-local:
	bash deploy/local/clickhouse.sh install

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
## else testcontainers when Docker answers, else deploy/local/kafka.sh) and, for the
## TestClickHouse* scenarios, a real ClickHouse (CLICKHOUSE_DSN, else
## deploy/local/clickhouse.sh). -v prints each scenario's FIGURES line. Scenario sizes:
## SPANPIPE_IT_* (see integration/doc.go). The suite's binary has the sink fault hook
## (build tag spanpipe_fault); its unit tests run here too, as the unit target builds
## without the tag.
integration: clickhouse-local
	$(GO) test -count=1 -tags spanpipe_fault -run Fault ./internal/app/
	@set -o pipefail; rc=0; \
	$(GO) test -timeout 30m -count=1 -v ./integration/ > integration.log 2>&1 || rc=$$?; \
	grep -E '^(--- |\s+--- |PASS|FAIL|ok)|FIGURES|SKIP' integration.log; \
	if [ $$rc -ne 0 ]; then echo "== integration failed (rc=$$rc); last 400 lines of integration.log:"; tail -n 400 integration.log; fi; \
	exit $$rc

## mastra: the @spanpipe/mastra package (clients/mastra): Node 22 from the npm registry
## (cached in clients/mastra/.cache), npm ci from the committed lock, the ESM and CJS
## builds, the type check against the pinned Mastra packages, and the unit tests. Its
## real-broker tests (TestMastra*) run in the integration suite.
mastra:
	@bin=$$(bash clients/mastra/scripts/setup.sh | tail -n1) && export PATH="$$(dirname "$$bin"):$$PATH" && \
	cd clients/mastra && npm run --silent typecheck && npm test

## sql-check: every ClickHouse statement the sink issues, run on chdb (the launcher's venv).
sql-check: clickhouse-local
	PYTHON="$$(bash deploy/local/clickhouse.sh python)" bash sinks/clickhouse/testdata/chdb_check.sh

## rules-check: promtool check rules + promtool test rules (Debian's prometheus package).
rules-check:
	bash deploy/prometheus/check.sh

## bench-smoke: a tiny `spanpipe bench` so that the command cannot rot.
bench-smoke:
	$(GO) run ./cmd/spanpipe bench --spans 5000 --latency-seconds 2 --out "" --db-dir "$${TMPDIR:-/tmp}"

## browser-test: the explorer in Debian's chromium (installed with apt-get when missing),
## driven by chromedp against a real `spanpipe dev --demo 50`.
browser-test: chromium
	$(GO) test -tags browser -count=1 -timeout 10m -run '^TestBrowser$$' -v ./query/

## screenshots: the README's explorer screenshots, taken by the browser test.
screenshots: chromium
	SPANPIPE_SCREENSHOTS=$(CURDIR)/docs/explorer $(GO) test -tags browser -count=1 -timeout 10m -run '^TestBrowser$$' ./query/

.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium; }

## race: the packages with concurrency, under the race detector (DuckDB's cgo build is
## left out: it takes minutes to build with -race and has no Go concurrency of its own).
race:
	$(GO) test $(GOTESTFLAGS) -race -shuffle=on ./producer/... ./consumer/... ./pipeline/... ./dropalerts/... ./alerting/... ./replay/... ./schema/... ./internal/app/...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: each fuzz target for a short while.
fuzz:
	@for f in FuzzDecode FuzzEventFields FuzzFastDecode FuzzPromote FuzzDecodeBinary FuzzBinaryRoundTrip FuzzJSONCheck; do \
		echo "== $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime 30s ./schema/ || exit 1; done
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
