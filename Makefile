# uamirror — `make test` runs on a fresh machine with only Go, gcc, Node/npm
# and apt: it installs what the tests need, then runs them with -race.

GO       ?= go
FUZZTIME ?= 10s

.PHONY: test deps vet fmt-check fuzz bench build demo

build:
	$(GO) build -o bin/uamirror ./cmd/uamirror

demo:
	$(GO) run ./cmd/uamirror demo

# Test dependencies: node-opcua (third-party OPC UA server) from npm, pinned;
# Chromium (Debian package) for the status page test.
deps:
	cd test/nodeopcua && npm ci --no-audit --no-fund --loglevel=error
	command -v chromium >/dev/null || { SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './test/nodeopcua/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Bounded fuzzing of every parser.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseNodeID$$' -fuzztime=$(FUZZTIME) ./mapping/
	$(GO) test -run='^$$' -fuzz='^FuzzParseYAML$$' -fuzztime=$(FUZZTIME) ./mapping/
	$(GO) test -run='^$$' -fuzz='^FuzzReadCSV$$' -fuzztime=$(FUZZTIME) ./mapping/
	$(GO) test -run='^$$' -fuzz='^FuzzConvert$$' -fuzztime=$(FUZZTIME) ./bridge/
	$(GO) test -run='^$$' -fuzz='^FuzzPeerSync$$' -fuzztime=$(FUZZTIME) ./redundancy/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeVariant$$' -fuzztime=$(FUZZTIME) ./redundancy/
	$(GO) test -run='^$$' -fuzz='^FuzzAdminRequests$$' -fuzztime=$(FUZZTIME) ./diagnostics/

test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) fuzz

# Benchmarks print their figures (not part of `make test`).
bench:
	$(GO) test -run='^$$' -bench=. -benchtime=1x ./...
