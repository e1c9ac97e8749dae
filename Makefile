# orderflow — every target CI runs is here; `make help` lists them.
GO        ?= go
BIN       := bin/orderflow
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/orderflow/orderflow/cli.Version=$(VERSION)
PKGS      := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_\/-]+:.*##/ {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/orderflow.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/orderflow

.PHONY: run
run: build ## Start the whole system on an embedded miniredis (API on 127.0.0.1:8080).
	$(BIN) dev

.PHONY: test
test: ## Run every test with the race detector (needs redis-server and redis-cli on PATH; starts its own servers, clusters and Sentinels).
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

.PHONY: test/short
test/short: ## Run the tests without the race detector.
	$(GO) test -count=1 -timeout 10m $(PKGS)

.PHONY: lint
lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

.PHONY: docs
docs: ## Regenerate docs/state_machine.md from the workflow definitions.
	$(GO) test ./statemachine -run TestStateMachineDocIsCurrent -update

.PHONY: bench
bench: build ## The benchmark harness (needs redis-server): writes docs/PERFORMANCE.md.
	$(BIN) bench --out docs/PERFORMANCE.md

.PHONY: bench/micro
bench/micro: ## Go micro-benchmarks of the hot paths (transition script, payload, API handler).
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./statemachine ./tasks ./api ./engine ./providers

.PHONY: chaos
chaos: build ## The chaos harness (needs redis-server): 2,000 orders, faults, worker kills, a Redis restart, an audit.
	$(BIN) chaos

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin

FUZZTIME  ?= 10s

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10s).
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAdvancePayload$$' -fuzztime $(FUZZTIME) ./tasks
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeEvent$$' -fuzztime $(FUZZTIME) ./statemachine
	$(GO) test -run '^$$' -fuzz '^FuzzOrderWorkflowEvents$$' -fuzztime $(FUZZTIME) ./statemachine
	$(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME) ./orders
	$(GO) test -run '^$$' -fuzz '^FuzzCreateOrder$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzEngineOutcomes$$' -fuzztime $(FUZZTIME) ./engine
