#!/usr/bin/env bash
# Bounded fuzzing: every fuzz target in the tree (every `func FuzzXxx(f
# *testing.F)` in a _test.go file, found anew on each run so that a new one
# is never missed), or the one named: fuzz.sh [-json] [-list] [PKG TARGET]
# (-list: print the targets found and stop).
# Each target runs `go test -fuzz` for FUZZTIME (default 5s), with
# interesting inputs minimised for at most FUZZMINIMIZETIME (default 1s:
# Go's default of 60s spends a short run minimising instead of fuzzing).
# -json passes `go test -json` output on (for test/testsum).
#
# Go's fuzzing coordinator sometimes gives up with "context deadline
# exceeded" when a worker stalls on a loaded machine, without any failing
# input; that run is retried once. A real finding (a failing input written
# under testdata/fuzz) always fails.
set -uo pipefail
cd "$(dirname "$0")/.."
json=()
if [ "${1:-}" = -json ]; then json=(-json); shift; fi
if [ "${1:-}" = -list ]; then list_only=1; shift; else list_only=; fi
time=${FUZZTIME:-5s}
mintime=${FUZZMINIMIZETIME:-1s}

# targets prints "PKG TARGET" for every fuzz target of the module.
targets() {
  grep -rHoE --include='*_test.go' --exclude-dir=node_modules --exclude-dir=testdata --exclude-dir=.git \
    '^func Fuzz[A-Za-z0-9_]*\([A-Za-z0-9_]+ \*testing\.F\)' . |
    sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*).*#\1/ \2#' | sort -u
}

fuzz_one() {
  local pkg=$1 target=$2 out rc attempt
  for attempt in 1 2; do
    out=$(go test "${json[@]}" -run='^$' -fuzz="^${target}\$" -fuzztime="$time" -fuzzminimizetime="$mintime" "$pkg" 2>&1 </dev/null)
    rc=$?
    if [ $rc -ne 0 ] && [ $attempt -eq 1 ] && ! grep -q "Failing input written\|panic:" <<<"$out" &&
      grep -q "context deadline exceeded" <<<"$out"; then
      echo "fuzz $target: coordinator timed out with no failing input (loaded machine); retrying once"
      continue
    fi
    if [ ${#json[@]} -gt 0 ]; then echo "$out"; else tail -n 3 <<<"$out"; [ $rc -eq 0 ] || echo "$out"; fi
    return $rc
  done
}

if [ $# -eq 2 ]; then
  fuzz_one "$1" "$2"
  exit
fi
list=$(targets)
if [ -z "$list" ]; then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi
if [ -n "$list_only" ]; then echo "$list"; exit 0; fi
n=$(wc -l <<<"$list")
echo "fuzzing $n targets, $time each: $(awk '{print $2}' <<<"$list" | paste -sd' ')"
rc=0
while read -r pkg target; do
  fuzz_one "$pkg" "$target" || rc=1
done <<<"$list"
exit $rc
