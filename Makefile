# uamirror — `make test` runs on a fresh machine with only Go, gcc, Node/npm
# and apt: it installs what the tests need, then runs them with -race.

GO       ?= go
FUZZTIME ?= 10s

.PHONY: test deps vet fmt-check fuzz bench build demo fault-full soak

build:
	$(GO) build -o bin/uamirror ./cmd/uamirror

demo:
	$(GO) run ./cmd/uamirror demo

# Test dependencies: node-opcua (third-party OPC UA server) from npm, pinned;
# Chromium (Debian package) for the status page test; iproute2, nftables and
# iptables for the fault matrix's network lab (test/fault, test/netlab; it
# also needs root, and skips without it).
deps:
	cd test/nodeopcua && npm ci --no-audit --no-fund --loglevel=error
	{ command -v chromium && command -v ip && command -v nft && command -v iptables; } >/dev/null || { SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium iproute2 nftables iptables; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './test/nodeopcua/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Bounded fuzzing of every parser.
fuzz:
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh ./mapping/ FuzzParseNodeID
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh ./mapping/ FuzzParseYAML
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh ./mapping/ FuzzReadCSV
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh ./bridge/ FuzzConvert
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh ./redundancy/ FuzzPeerSync
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh ./redundancy/ FuzzDecodeVariant
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz.sh ./diagnostics/ FuzzAdminRequests

test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) fuzz

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
