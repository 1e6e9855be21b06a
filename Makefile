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
COMMIT        ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS       := -X github.com/relman/relman/surface/cli.Version=$(VERSION) -X github.com/relman/relman/surface/cli.Commit=$(COMMIT)
export RELMAN_TEMPORAL_BIN ?= $(ABSBIN)/temporal

# The previous release of relman, the one `make test-upgrade` upgrades from
# and rolls back to. It moves forward at each release: set it to the commit
# (or tag) of the release just made. A clean clone has the history of main.
PREVIOUS_RELEASE ?= 13d04d94071e79ab0a2c52587844376544674d1f

# The production-style Temporal of `make test-cluster` (issue 16): the server,
# its sql tool and its PostgreSQL schema, all from one pinned module version.
# v1.32.2 needs a newer Go than ours.
TEMPORAL_SERVER_MOD := go.temporal.io/server
TEMPORAL_SERVER_VER := v1.32.1
# SeaweedFS, a real S3-compatible server. Its go.mod has a replace directive,
# so `go install` refuses it: scripts/build-weed.sh builds it from a copy of
# the module.
SEAWEEDFS_MOD := github.com/seaweedfs/seaweedfs
SEAWEEDFS_VER := v0.0.0-20261109003541-7506e5f91cd6


.PHONY: build test test-upgrade test-short test-cluster cluster-tools bench bench-quick demo demo-ci lint fuzz clean prereqs-test prereqs-demo prereqs-cluster fleet bench-cluster

# What the system must have (git, subversion, ...): scripts/prereqs installs
# it with apt-get when run as root, else names what to install.
prereqs-test:
	@scripts/prereqs test
prereqs-demo:
	@scripts/prereqs demo
prereqs-cluster:
	@scripts/prereqs cluster

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

# The previous release, built from git: its tree exported at
# PREVIOUS_RELEASE (no checkout, the work tree is untouched) and built there.
# Rebuilt when PREVIOUS_RELEASE moves (the stamp file names the commit).
$(BIN)/relman-previous: $(BIN)/.relman-previous-$(PREVIOUS_RELEASE)
	@:
$(BIN)/.relman-previous-$(PREVIOUS_RELEASE):
	@git cat-file -e '$(PREVIOUS_RELEASE)^{commit}' 2>/dev/null || \
	  { git fetch --quiet --unshallow 2>/dev/null; git cat-file -e '$(PREVIOUS_RELEASE)^{commit}' 2>/dev/null; } || { \
	  echo "PREVIOUS_RELEASE $(PREVIOUS_RELEASE) is not in this clone: fetch the history of main (git fetch --unshallow origin main)"; exit 1; }
	@d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	git archive $(PREVIOUS_RELEASE) | tar -x -C "$$d" && \
	(cd "$$d" && $(GO) build -ldflags '-X github.com/relman/relman/internal/cli.Version=previous-$(PREVIOUS_RELEASE)' -o $(ABSBIN)/relman-previous ./cmd/relman)
	rm -f $(BIN)/.relman-previous-*
	touch $@

# The upgrade test (build tag `upgrade`, ./e2e/upgrade): a stack of the
# previous release (manager, builder, two installers as processes) with
# releases in flight, upgraded to this tree in the operations guide's order,
# then rolled back and forward again: every release of the upgrade must end
# as it should, no workflow task may fail, no live host may drop out of
# `relman registrations`; what the roll-back breaks is reported. Prints a
# table; about 1.5 minutes once both binaries are built.
test-upgrade: prereqs-test $(BIN)/temporal $(BIN)/relman-previous
	RELMAN_PREVIOUS_BIN=$(ABSBIN)/relman-previous RELMAN_PREVIOUS_RELEASE=$(PREVIOUS_RELEASE) $(GO) test -tags upgrade -count=1 -timeout 15m -v -run TestUpgrade ./e2e/upgrade

# The chaos tests alone: builders, installers, managers and the Temporal
# server killed mid-release (real processes, SIGKILL). `make test` runs them
# too (./chaos is part of ./...); `go test -short` skips them.
.PHONY: chaos
chaos: prereqs-test $(BIN)/temporal
	$(GO) test -count=1 -timeout 30m ./chaos

# The cluster tests (build tag `cluster`): relman on a Temporal cluster of
# four service processes on PostgreSQL, and the artifact store on SeaweedFS.
# One package at a time (-p 1): each starts its own servers, and two
# clusters at once on two cores only make both slow.
test-cluster: cluster-tools
	RELMAN_CLUSTER_BIN=$(ABSBIN) $(GO) test -tags cluster -p 1 -count=1 -timeout 40m ./harness/testcluster ./artifact ./e2e/cluster

cluster-tools: prereqs-cluster $(BIN)/temporal-server $(BIN)/temporal-sql-tool $(BIN)/temporal-schema/.ok $(BIN)/weed

# go install names binaries after their directory (server, sql): install
# into a scratch GOBIN and give them names that say what they are.
$(BIN)/temporal-server:
	@mkdir -p $(BIN)/.gobin
	GOBIN=$(ABSBIN)/.gobin $(GO) install $(TEMPORAL_SERVER_MOD)/cmd/server@$(TEMPORAL_SERVER_VER)
	mv $(BIN)/.gobin/server $@

$(BIN)/temporal-sql-tool:
	@mkdir -p $(BIN)/.gobin
	GOBIN=$(ABSBIN)/.gobin $(GO) install $(TEMPORAL_SERVER_MOD)/cmd/tools/sql@$(TEMPORAL_SERVER_VER)
	mv $(BIN)/.gobin/sql $@

# The PostgreSQL schema of the same server version, copied out of the module
# cache so the tests need no Go tooling to find it.
$(BIN)/temporal-schema/.ok:
	scripts/copy-module-dir.sh $(TEMPORAL_SERVER_MOD)@$(TEMPORAL_SERVER_VER) schema/postgresql/v12 $(BIN)/temporal-schema
	touch $@

# About 8 minutes on two busy cores.
$(BIN)/weed:
	scripts/build-weed.sh $(SEAWEEDFS_MOD)@$(SEAWEEDFS_VER) $@

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

# The cluster rows of BENCHMARKS.md (row 1 on a PostgreSQL Temporal cluster,
# row 2 with the store on SeaweedFS): rewrites their section only, which
# `make bench` keeps. About 6 minutes once the cluster tools are built.
bench-cluster: $(BIN)/temporal cluster-tools
	RELMAN_CLUSTER_BIN=$(ABSBIN) $(GO) run ./bench -cluster -out BENCHMARKS.md

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
	$(GO) vet -tags cluster ./harness/testcluster ./artifact ./e2e/cluster
	$(GO) vet -tags upgrade ./e2e/upgrade
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	./$(BIN)/workflowcheck ./workflows/...

fuzz:
	$(GO) test ./internal/archive -run XXX -fuzz FuzzExtractTarGz -fuzztime 30s
	$(GO) test ./internal/archive -run XXX -fuzz FuzzExtractZip -fuzztime 30s

clean:
	rm -rf $(BIN)/relman .relman
