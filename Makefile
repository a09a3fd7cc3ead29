# changesync build, test and demo targets. Every target runs from a fresh clone on a
# machine with Go and the PostgreSQL server binaries (see README.md).

GO        ?= go
BIN       := bin
BINARY    := $(BIN)/changesync
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
SQLC      := $(GO) tool -modfile=tools/go.mod sqlc
GOLANGCI_VERSION := v2.15.0
GOLANGCI  := $(BIN)/golangci-lint

export GORACE ?= atexit_sleep_ms=0

.PHONY: all build test test-go check-generated generate lint demo bench fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BINARY) ./cmd/changesync

## test: the stale-code check, vet and every test (real PostgreSQL, -race).
test: check-generated test-go

test-go:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## generate: regenerate the sqlc code in pkg/store/dbgen from db/queries and migrations.
generate:
	$(SQLC) generate

## check-generated: fail when the committed sqlc code differs from what sqlc generates.
check-generated:
	@$(SQLC) diff || { echo "pkg/store/dbgen is stale: run 'make generate' and commit the result" >&2; exit 1; }

$(GOLANGCI):
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

lint: $(GOLANGCI)
	$(GOLANGCI) run ./...

## demo: the reference scenario end to end on a throwaway local PostgreSQL.
demo: build
	$(BINARY) demo

## bench: drain and lag benchmarks against native logical replication; see docs/benchmarks.md.
bench: build
	$(GO) run ./cmd/csbench -binary $(BINARY) -out docs/benchmarks.md

## fuzz: run each fuzz test for a short while.
fuzz:
	$(GO) test ./pkg/capture -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 30s
	$(GO) test ./pkg/capture -run '^$$' -fuzz '^FuzzDecodeStreamed$$' -fuzztime 30s
	$(GO) test ./pkg/config -run '^$$' -fuzz FuzzLoad -fuzztime 30s

clean:
	rm -rf $(BIN)
