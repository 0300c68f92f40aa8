# The README's two commands:
#   go run ./cmd/spanpipe dev --demo 1000 --exit-when-done
#   make test
GO ?= go
GOTESTFLAGS ?= -timeout 20m

.PHONY: test unit race deps-check vet build bench fuzz

## test: everything CI runs (vet, the producer import check, unit and race tests,
## integration tests).
test: vet deps-check unit race

build:
	$(GO) build -o bin/spanpipe ./cmd/spanpipe

vet:
	$(GO) vet ./...

## deps-check: applications import producer/; it must never pull in a sink (cgo DuckDB,
## ClickHouse) or test infrastructure.
deps-check:
	@bad=$$($(GO) list -deps ./producer/... | grep -E 'duckdb|clickhouse|testcontainers|spanpipe/sinks|spanpipe/pipeline|spanpipe/consumer' || true); \
	if [ -n "$$bad" ]; then echo "producer/ must not depend on:"; echo "$$bad"; exit 1; fi; \
	echo "deps-check: producer/ is free of sinks"

unit:
	$(GO) test $(GOTESTFLAGS) -shuffle=on ./...

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
