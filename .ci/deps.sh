#!/usr/bin/env bash
# The test dependencies (`make deps`), installed only when missing, so a
# second run does nothing:
#   - node-opcua (test/nodeopcua, pinned in its package-lock.json) via
#     `npm ci`; skipped while node_modules matches the lock file;
#   - Debian packages: chromium (the status-page test), iproute2, nftables
#     and iptables (the fault matrix's network lab). Their commands are
#     looked for in /usr/sbin and /sbin too, which a non-root PATH lacks.
# apt-get runs as root, or through sudo; its output goes to a log file
# (DEPS_LOG, default .make/apt.log), not the terminal. Without root or sudo
# the packages are not installed and the tests that need them are skipped
# (`make test` lists them with the reason) — unless CI is set, where that
# is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
log=${DEPS_LOG:-.make/apt.log}

# node-opcua
lock=test/nodeopcua/package-lock.json stamp=test/nodeopcua/node_modules/.uamirror-lock
if cmp -s "$lock" "$stamp" 2>/dev/null; then
  echo "deps: node-opcua installed (test/nodeopcua/node_modules)"
else
  echo "deps: npm ci in test/nodeopcua (node-opcua 2.182.2, 145 packages, ~20 s)"
  (cd test/nodeopcua && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$stamp"
fi

# Debian packages: command → package.
declare -A pkg_of=([chromium]=chromium [ip]=iproute2 [nft]=nftables [iptables]=iptables)
missing=()
for c in chromium ip nft iptables; do
  PATH="$PATH:/usr/sbin:/sbin" command -v "$c" >/dev/null 2>&1 || missing+=("${pkg_of[$c]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: chromium, iproute2, nftables, iptables installed"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  msg="deps: cannot install ${missing[*]} (needs root or sudo): the tests that need them will be skipped"
  if [ -n "${CI:-}" ]; then echo "$msg; CI is set: failing" >&2; exit 1; fi
  echo "$msg"
  exit 0
fi
mkdir -p "$(dirname "$log")"
size=
case " ${missing[*]} " in *" chromium "*) size=" — on a fresh Debian 12 chromium brings ~140 packages (~350 MB), a few minutes";; esac
echo "deps: apt-get install ${missing[*]}${sudo[*]:+ through sudo}${size}; log: $log"
start=$SECONDS
if ! { "${sudo[@]}" apt-get update && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; } >>"$log" 2>&1; then
  echo "deps: apt-get failed; the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
echo "deps: installed ${missing[*]} in $((SECONDS - start)) s"
