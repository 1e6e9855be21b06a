# relman: the two set-up commands are `make demo` and `make test`.
GO            ?= go
TEMPORAL_CLI  := github.com/temporalio/cli/cmd/temporal@v1.5.1
HELM          := helm.sh/helm/v3/cmd/helm@v3.22.0
# Relative, so `make bin/temporal` names the same target; GOBIN needs it
# absolute.
BIN           := bin
ABSBIN        := $(CURDIR)/$(BIN)
DEV_DIR       ?= .relman/dev
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X github.com/relman/relman/internal/cli.Version=$(VERSION)
export RELMAN_TEMPORAL_BIN ?= $(ABSBIN)/temporal

.PHONY: build test test-short bench bench-quick demo demo-ci lint fuzz clean prereqs-test prereqs-demo fleet

# What the system must have (git, subversion, ...): scripts/prereqs installs
# it with apt-get when run as root, else names what to install.
prereqs-test:
	@scripts/prereqs test
prereqs-demo:
	@scripts/prereqs demo

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/relman ./cmd/relman

# The pinned Temporal CLI (dev server); about 6 minutes on a cold build cache.
$(BIN)/temporal:
	GOBIN=$(ABSBIN) $(GO) install $(TEMPORAL_CLI)

# The pinned helm, for the chart's checks in deployments/ (about 90 s).
$(BIN)/helm:
	GOBIN=$(ABSBIN) $(GO) install $(HELM)

# Every test: unit tests, replay tests, and the end-to-end tests against a
# real dev server with separate manager, builder and installer processes.
test: prereqs-test $(BIN)/temporal $(BIN)/helm build
	$(GO) test -count=1 -timeout 20m ./...

# The chaos tests alone: builders, installers, managers and the Temporal
# server killed mid-release (real processes, SIGKILL). `make test` runs them
# too (./chaos is part of ./...); `go test -short` skips them.
.PHONY: chaos
chaos: prereqs-test $(BIN)/temporal
	$(GO) test -count=1 -timeout 30m ./chaos

# Fleet scale: 1,000 simulated installer hosts (real installers in the test
# process) register and renew for FLEET_MINUTES while releases of 3 named
# targets go to all of them (./fleet; about a quarter of an hour).
FLEET_HOSTS   ?= 1000
FLEET_MINUTES ?= 10
fleet: prereqs-test $(BIN)/temporal
	RELMAN_FLEET=1 RELMAN_FLEET_HOSTS=$(FLEET_HOSTS) RELMAN_FLEET_MINUTES=$(FLEET_MINUTES) \
		$(GO) test -count=1 -timeout 45m -v -run TestFleet ./fleet

test-short:
	$(GO) test -short ./...

# relman against floors measured in the same run on the same dev server;
# rewrites BENCHMARKS.md (about 11 minutes on 2 cores; rows 6 and 7, 1,000
# and 3,000 simulated hosts, take 8 of them).
bench: $(BIN)/temporal
	$(GO) run ./bench -out BENCHMARKS.md

# The CI smoke test of the benchmarks: small sizes, ratios printed, not judged.
bench-quick: $(BIN)/temporal
	$(GO) run ./bench -quick

# The dev stack and a real release of the example project, then the stack
# keeps running until Ctrl-C.
demo: prereqs-demo $(BIN)/temporal build
	./$(BIN)/relman dev --dir $(DEV_DIR) --demo

# The same path, non-interactive: free ports, a temp dir, stops after the demo.
demo-ci: prereqs-demo $(BIN)/temporal build
	@d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	./$(BIN)/relman dev --dir "$$d" --port 17299 --ui-port -1 --gateway-port 0 --demo --once

$(BIN)/workflowcheck:
	GOBIN=$(ABSBIN) $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0

# go vet, gofmt, and Temporal's determinism check of the workflows.
lint: $(BIN)/workflowcheck
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	./$(BIN)/workflowcheck ./workflows/...

fuzz:
	$(GO) test ./internal/archive -run XXX -fuzz FuzzExtractTarGz -fuzztime 30s
	$(GO) test ./internal/archive -run XXX -fuzz FuzzExtractZip -fuzztime 30s

clean:
	rm -rf $(BIN)/relman .relman
