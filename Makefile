# uamirror — `make test` runs on a fresh machine with only Go, gcc, make,
# Node/npm and apt (as root, or a user with sudo): it installs what the
# tests need, then runs them with -race and fuzzes every fuzz target.

SHELL    := /bin/bash
GO       ?= go
FUZZTIME ?= 5s

.PHONY: test deps vet fmt-check fuzz bench build demo fault-full soak

build:
	$(GO) build -o bin/uamirror ./cmd/uamirror

demo:
	$(GO) run ./cmd/uamirror demo

# Test dependencies, installed only when missing (see .ci/deps.sh):
# node-opcua (third-party OPC UA server) from npm, pinned; Chromium (Debian
# package) for the status page test; iproute2, nftables and iptables for
# the fault matrix's network lab (test/fault, test/netlab; it also needs
# root, and skips without it). apt-get runs as root or through sudo, its
# output in .make/apt.log.
deps:
	@bash .ci/deps.sh

fmt-check:
	@echo "gofmt, go vet"
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './test/nodeopcua/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Bounded fuzzing of every fuzz target in the tree (found by .ci/fuzz.sh:
# every func FuzzXxx(*testing.F)), FUZZTIME each.
fuzz:
	@FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh

# The tests with -race and the fuzz targets, as `go test -json` through
# test/testsum: a line per package as it ends, every failed test's output,
# every skipped test with its reason, and a closing line
# "N passed, N failed, N skipped". Non-zero exit on any failure.
test: deps fmt-check vet
	@echo "go test -race ./... then $$(bash .ci/fuzz.sh -list | wc -l) fuzz targets for $(FUZZTIME) each: ~10-15 min on 2 cores; compiling takes 1-4 min before the first package ends"
	@$(GO) build -o .make/testsum ./test/testsum
	@set -o pipefail; { rc=0; $(GO) test -race -count=1 -timeout 15m -json ./... || rc=1; \
		FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh -json || rc=1; exit $$rc; } | \
		.make/testsum -packages $$($(GO) list ./... | wc -l)

# The whole fault matrix (root; ~10 min) and the soak (not part of `make test`).
fault-full:
	$(GO) test -race -count=1 -timeout 30m -v ./test/fault/ -fault.full

# The fault matrix's starved mode (#11 item 6): CPU hogs at 2x the cores
# (stress-ng, installed here when missing) and random SIGSTOP of the active,
# STARVED rounds each of isolate-active, freeze-active and kill-during-update.
# Root; ~30-40 min for 30 rounds. CI runs one round of the first two.
STARVED ?= 30
.PHONY: fault-starved
fault-starved:
	command -v stress-ng >/dev/null || { SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq stress-ng; }
	$(GO) test -race -count=1 -timeout 3h -v ./test/fault/ -run 'TestStarved' -fault.starved $(STARVED) -fault.results starved-results.jsonl

SOAK ?= 30m
soak:
	$(GO) test -race -count=1 -timeout 2h -v ./test/fault/ -run Soak -soak $(SOAK)

# Benchmarks print their figures (not part of `make test`).
bench:
	$(GO) test -run='^$$' -bench=. -benchtime=1x ./...
