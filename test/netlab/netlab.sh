#!/usr/bin/env bash
# Copied from ../shared/netlab.sh (the team's lab script) so that CI, which runs
# on a clean clone, has it; keep the two in step.
# netlab.sh - a small, disposable network lab for fault-injection tests.
#
# Hosts h1..hN are network namespaces, each with lo up and one veth "eth0"
# (address $NETLAB_NET.N/24) plugged into a bridge that lives in its own
# "switch" namespace. Nothing is created in the caller's network namespace,
# the hosts have no default route, so lab traffic cannot leave the lab.
#
#   netlab.sh up N                 create h1..hN (idempotent)
#   netlab.sh down                 remove everything this lab created (idempotent)
#   netlab.sh status               hosts, addresses, cuts, delays, losses
#   netlab.sh ip HOST              print HOST's address
#   netlab.sh exec HOST CMD...     run CMD inside HOST (execs: the PID is CMD's)
#   netlab.sh cut A B | heal A B   drop / restore all IPv4 between A and B (both ways)
#   netlab.sh heal --all           remove every cut
#   netlab.sh isolate HOST | rejoin HOST   take HOST's link down / up (NO-CARRIER)
#   netlab.sh delay HOST MS [JITTER_MS]    hold every packet arriving at HOST MS ms (0 = off)
#   netlab.sh loss HOST PCT        drop PCT% (0-100, up to 2 decimals) of packets arriving at HOST (0 = off)
#   netlab.sh pids HOST            PIDs of processes running in HOST
#   netlab.sh signal HOST SIG      send SIG (KILL, STOP, CONT, TERM...) to every process in HOST
#   netlab.sh sandbox CMD...       run CMD in private user+net+mount+PID namespaces:
#                                  works without root; the lab and its processes vanish when CMD exits
#
# Environment: NETLAB_PREFIX (default nlab; every namespace is named PREFIX-...),
# NETLAB_NET (default 10.213.0; must be a private /24 prefix), NETLAB_STATE
# (state dir, default /run/netlab-PREFIX), NETLAB_CACHE (where the delay helper
# is built, default ~/.cache/netlab).
# Needs: iproute2; nftables for cut/heal/loss; iptables + Go for delay.
set -euo pipefail

PROG=${0##*/}
P=${NETLAB_PREFIX:-nlab}
NET=${NETLAB_NET:-10.213.0}
STATE=${NETLAB_STATE:-/run/netlab-$P}   # same lifetime as /run/netns
SW="$P-sw"                 # switch namespace (holds the bridge)
MARK="netlab:$P"           # ownership marker: alias of lo in every namespace we create
TABLE="bridge netlab"      # nft table inside the switch namespace
QNUM=2130                  # NFQUEUE number used for delay (per namespace, so no clash)
HELPER_NAME=netlab-delay

trap '' PIPE   # a caller that went away must not stop 'down' half-way
die()  { echo "$PROG: error: $*" >&2 || true; exit 1; }
note() { echo "$PROG: $*" >&2 || true; }

[[ $P =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "NETLAB_PREFIX '$P' must match ^[a-z][a-z0-9]{0,7}\$"
[[ $NET =~ ^(10\.[0-9]{1,3}|172\.(1[6-9]|2[0-9]|3[01])|192\.168)\.[0-9]{1,3}$ ]] ||
	die "NETLAB_NET '$NET' must be the first three octets of a private /24 (10.x.y, 172.16-31.x, 192.168.x)"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

need_root() {
	[[ $EUID -eq 0 ]] || die "must run as root; without root use: $PROG sandbox CMD... (user namespace)"
	command -v ip >/dev/null || die "'ip' (iproute2) not found"
}
need() { command -v "$1" >/dev/null || die "'$1' not found: $2"; }

nsx() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }   # run a tool in a namespace
ns_exists() { [[ -e /run/netns/$1 ]]; }
owned() { ip -n "$1" -o link show dev lo 2>/dev/null | grep -q "alias $MARK\$"; }
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$P-(sw|h[0-9]+)\$" || true; }
lab_hosts() { lab_namespaces | sed -n "s/^$P-\(h[0-9]*\)\$/\1/p" | sort -V; }

lock() {
	mkdir -p "$STATE"
	exec 9>"$STATE/lock"
	flock -w 60 9 || die "another $PROG is busy with lab '$P' (lock $STATE/lock)"
}

# host NAME -> sets H (hN), HNS (namespace), HIP (address); dies if not ours
host() {
	[[ ${1:-} =~ ^h([0-9]{1,3})$ ]] || die "bad host name '${1:-}' (expected h1, h2, ...)"
	H=$1 HNS="$P-$1" HIP="$NET.${BASH_REMATCH[1]}"
	ns_exists "$HNS" || die "host $H does not exist (run: $PROG up N)"
	owned "$HNS" || die "namespace $HNS exists but was not created by $PROG (no '$MARK' marker); not touching it"
}

mk_ns() {  # create namespace $1 with lo up and our marker; refuse foreign ones
	if ns_exists "$1"; then
		owned "$1" || die "namespace $1 already exists and was not created by $PROG; choose another NETLAB_PREFIX"
	else
		ip netns add "$1"
	fi
	ip -n "$1" link set dev lo alias "$MARK"
	ip -n "$1" link set dev lo up
}

ensure_table() {
	need nft "cut/heal/loss need nftables (apt-get install nftables)"
	nsx "$SW" nft list table $TABLE >/dev/null 2>&1 && return 0
	nsx "$SW" nft -f - <<-EOF || die "could not create nft table in $SW"
	table $TABLE {
	  set cuts { type ipv4_addr . ipv4_addr; }
	  chain forward {
	    type filter hook forward priority 0; policy accept;
	    ip saddr . ip daddr @cuts counter drop
	  }
	}
	EOF
}

ensure_loss_chain() {  # per-host chain, jumped to for frames the bridge sends to the host
	nsx "$SW" nft list chain $TABLE "loss_$1" >/dev/null 2>&1 && return 0
	nsx "$SW" nft add chain $TABLE "loss_$1"
	nsx "$SW" nft add rule $TABLE forward oifname "\"$1\"" jump "loss_$1"
}

cmd_up() {
	[[ ${1:-} =~ ^[0-9]+$ ]] && (( $1 >= 1 && $1 <= 64 )) || die "usage: $PROG up N   (1 <= N <= 64)"
	local n=$1 i extra=()
	need_root; lock
	for h in $(lab_hosts); do (( ${h#h} > n )) && extra+=("$h"); done
	(( ${#extra[@]} == 0 )) || die "lab '$P' already has ${extra[*]} beyond h$n; run '$PROG down' first"
	for ((i = 0; i <= n; i++)); do  # refuse before creating anything
		local ns=$SW; ((i > 0)) && ns="$P-h$i"
		if ns_exists "$ns" && ! owned "$ns"; then
			die "namespace $ns already exists and was not created by $PROG; choose another NETLAB_PREFIX"
		fi
	done
	mk_ns "$SW"
	ip -n "$SW" link show dev br0 >/dev/null 2>&1 || ip -n "$SW" link add br0 type bridge
	ip -n "$SW" link set dev br0 up
	# bridged frames should not go through iptables/conntrack of the switch namespace
	nsx "$SW" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-ip*tables /proc/sys/net/bridge/bridge-nf-call-arptables; do [ -w "$f" ] && echo 0 >"$f"; done; true' 2>/dev/null || true
	command -v nft >/dev/null && ensure_table
	for ((i = 1; i <= n; i++)); do
		local ns="$P-h$i"
		mk_ns "$ns"
		if ! ip -n "$SW" link show dev "h$i" >/dev/null 2>&1; then
			ip -n "$ns" link del dev eth0 2>/dev/null || true
			ip -n "$SW" link add "h$i" type veth peer name eth0 netns "$ns"
		fi
		ip -n "$SW" link set dev "h$i" master br0 up
		ip -n "$ns" addr replace "$NET.$i/24" dev eth0
		ip -n "$ns" link set dev eth0 up
		command -v nft >/dev/null && ensure_loss_chain "h$i"
	done
	note "lab '$P' up: h1..h$n = $NET.1..$NET.$n (namespaces $P-h1..$P-h$n, switch $SW)"
}

procs_in() {  # PIDs in namespace $1, without our own delay helper
	local p
	for p in $(ip netns pids "$1" 2>/dev/null); do
		[[ $(cat "/proc/$p/comm" 2>/dev/null) == "$HELPER_NAME" ]] || echo "$p"
	done
}

cmd_down() {
	need_root; lock
	local ns p list left=0
	for ns in $(lab_namespaces); do
		owned "$ns" || { note "skipping $ns: not created by $PROG"; continue; }
		p=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
		if [[ -n $p ]]; then
			list=$(ps -o pid=,comm= -p "$(echo $p | tr " " ",")" 2>/dev/null | awk '{printf "%s%s(%s)", (NR > 1 ? " " : ""), $2, $1}' || true)
			kill -TERM $p 2>/dev/null || true
			for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -z $(ip netns pids "$ns") ]] && break; sleep 0.1; done
			p=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
			[[ -n $p ]] && { kill -KILL $p 2>/dev/null || true; sleep 0.1; }
			note "stopped processes left in $ns: $list"
		fi
	done
	for ns in $(lab_namespaces); do
		owned "$ns" || continue
		[[ $ns == "$SW" ]] && continue
		ip netns del "$ns"; left=$((left + 1))
	done
	if ns_exists "$SW" && owned "$SW"; then ip netns del "$SW"; left=$((left + 1)); fi
	rm -rf "$STATE"
	note "lab '$P' down ($left namespaces removed)"
}

cmd_status() {
	need_root
	local hosts h ns
	hosts=$(lab_hosts)
	[[ -n $hosts ]] || { echo "lab '$P': not up"; return 0; }
	echo "lab '$P' (switch $SW):"
	for h in $hosts; do
		ns="$P-$h"
		owned "$ns" || { echo "  $h: FOREIGN namespace $ns"; continue; }
		local addr link dl loss
		addr=$(ip -n "$ns" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')
		link=$(ip -n "$SW" -o link show dev "$h" 2>/dev/null | grep -q 'state UP' && echo up || echo DOWN)
		dl=$( (ps -o args= -p "$(cat "$STATE/delay-$h.pid" 2>/dev/null || echo 0)" 2>/dev/null || true) |
			sed -n 's/.*-delay \([^ ]*\) -jitter \([^ ]*\).*/\1 +0..\2/p' | sed 's/ +0\.\.0ms$//')
		loss=$( (nsx "$SW" nft list chain $TABLE "loss_$h" 2>/dev/null || true) |
			sed -n 's/.*mod 10000 < \([0-9]*\).*/\1/p; s/^[[:space:]]*counter packets.*drop$/10000/p')
		[[ -n $loss ]] && loss="$((loss / 100)).$(printf %02d $((loss % 100)))%"
		printf '  %-4s %-15s link %-4s delay %-22s loss %s\n' "$h" "${addr:-?}" "$link" "${dl:-none}" "${loss:-none}"
	done
	local cuts
	cuts=$( (nsx "$SW" nft list set $TABLE cuts 2>/dev/null || true) | sed -n '/elements/,$p' |
		grep -oE "[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+" | sed 's/.*\./h/' | paste -d' ' - - |
		awk '{ if ($1 > $2) { t = $1; $1 = $2; $2 = t }; print $1 "<->" $2 }' | sort -uV | tr '\n' ' ' || true)
	echo "  cuts: ${cuts:-none}"
}

cmd_exec() {
	need_root
	[[ $# -ge 2 ]] || die "usage: $PROG exec HOST CMD [ARGS...]"
	host "$1"; shift
	exec ip netns exec "$HNS" "$@"
}

pair() {  # pair A B -> IPA IPB
	[[ $# -eq 2 ]] || die "usage: $PROG $CMD A B   (e.g. $PROG $CMD h1 h2)"
	[[ $1 != "$2" ]] || die "$CMD: A and B must differ"
	host "$1"; IPA=$HIP; A=$H
	host "$2"; IPB=$HIP; B=$H
}

cmd_cut() {
	need_root; pair "$@"; lock; ensure_table
	nsx "$SW" nft add element $TABLE cuts "{ $IPA . $IPB, $IPB . $IPA }"
	note "cut $A <-> $B"
}

cmd_heal() {
	need_root
	if [[ ${1:-} == --all && $# -eq 1 ]]; then
		lock; ensure_table; nsx "$SW" nft flush set $TABLE cuts; note "healed all cuts"; return 0
	fi
	pair "$@"; lock; ensure_table
	local e
	for e in "$IPA . $IPB" "$IPB . $IPA"; do
		if nsx "$SW" nft get element $TABLE cuts "{ $e }" >/dev/null 2>&1; then
			nsx "$SW" nft delete element $TABLE cuts "{ $e }"
		fi
	done
	note "healed $A <-> $B"
}

cmd_isolate() { need_root; [[ $# -eq 1 ]] || die "usage: $PROG isolate HOST"; host "$1"; ip -n "$SW" link set dev "$H" down; note "$H isolated (link down)"; }
cmd_rejoin()  { need_root; [[ $# -eq 1 ]] || die "usage: $PROG rejoin HOST";  host "$1"; ip -n "$SW" link set dev "$H" up;   note "$H rejoined (link up)"; }

cmd_loss() {
	need_root
	[[ $# -eq 2 ]] || die "usage: $PROG loss HOST PCT   (PCT 0-100, e.g. 5 or 0.5; 0 = off)"
	[[ $2 =~ ^([0-9]{1,3})(\.([0-9]{1,2}))?$ ]] || die "loss: bad percentage '$2'"
	local frac=${BASH_REMATCH[3]:-0}; [[ ${#frac} -eq 1 ]] && frac=${frac}0
	local bp=$((10#${BASH_REMATCH[1]} * 100 + 10#$frac))
	(( bp <= 10000 )) || die "loss: percentage must be <= 100"
	host "$1"; lock; ensure_table; ensure_loss_chain "$H"
	nsx "$SW" nft flush chain $TABLE "loss_$H"
	if (( bp == 10000 )); then nsx "$SW" nft add rule $TABLE "loss_$H" counter drop
	elif (( bp > 0 )); then nsx "$SW" nft add rule $TABLE "loss_$H" numgen random mod 10000 "<" $bp counter drop; fi
	note "loss $H: $2% of packets it receives"
}

helper_bin() {  # build (once, cached) the NFQUEUE delay helper embedded below
	local cache=${NETLAB_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/netlab}
	mkdir -p "$cache" 2>/dev/null && [[ -w $cache ]] || { cache=${TMPDIR:-/tmp}/netlab-cache-$(id -u); mkdir -p "$cache"; }
	local src sum
	src=$(sed -n "/^: <<'__NETLAB_DELAY_GO__'\$/,/^__NETLAB_DELAY_GO__\$/p" "$0" | sed '1d;$d')
	sum=$(printf '%s' "$src" | sha256sum | cut -c1-12)
	BIN="$cache/$HELPER_NAME-$sum/$HELPER_NAME"
	[[ -x $BIN ]] && return 0
	need go "delay needs Go to build its helper (or set NETLAB_CACHE to a dir holding $HELPER_NAME-$sum/$HELPER_NAME)"
	local d; d=$(mktemp -d "$cache/build.XXXXXX")
	printf '%s\n' "$src" >"$d/main.go"
	printf 'module netlabdelay\n\ngo 1.21\n' >"$d/go.mod"
	(cd "$d" && CGO_ENABLED=0 go build -trimpath -o "$HELPER_NAME" .) || { rm -rf "$d"; die "building the delay helper failed"; }
	mkdir -p "${BIN%/*}"; mv "$d/$HELPER_NAME" "$BIN"; rm -rf "$d"
}

delay_off() {  # remove rule + helper of host $H (no error if absent)
	while nsx "$HNS" iptables -w -t mangle -D PREROUTING -i eth0 -m comment --comment netlab-delay \
		-j NFQUEUE --queue-num $QNUM --queue-bypass 2>/dev/null; do :; done
	local pid; pid=$(cat "$STATE/delay-$H.pid" 2>/dev/null || true)
	if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$HELPER_NAME" ]]; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do [[ -d /proc/$pid ]] || break; sleep 0.05; done
	fi
	rm -f "$STATE/delay-$H.pid"
}

cmd_delay() {
	need_root
	[[ $# -eq 2 || $# -eq 3 ]] || die "usage: $PROG delay HOST MS [JITTER_MS]   (0 = off)"
	[[ $2 =~ ^[0-9]+$ ]] || die "delay: MS must be a whole number of milliseconds, got '$2'"
	[[ ${3:-0} =~ ^[0-9]+$ ]] || die "delay: JITTER_MS must be a whole number, got '$3'"
	host "$1"; lock
	need iptables "delay needs iptables for its NFQUEUE rule (apt-get install iptables); sch_netem may be missing from the kernel"
	delay_off
	if (( $2 == 0 && ${3:-0} == 0 )); then note "delay $H: off"; return 0; fi
	helper_bin
	rm -f "$STATE/delay-$H.pid"
	nsx "$HNS" setsid "$BIN" -queue $QNUM -delay "${2}ms" -jitter "${3:-0}ms" -pidfile "$STATE/delay-$H.pid" \
		</dev/null >"$STATE/delay-$H.log" 2>&1 9>&- &
	for _ in $(seq 100); do [[ -s $STATE/delay-$H.pid ]] && break; kill -0 $! 2>/dev/null || break; sleep 0.02; done
	[[ -s $STATE/delay-$H.pid ]] || die "delay helper did not start: $(cat "$STATE/delay-$H.log")"
	# Ingress on purpose: packets queued on egress still belong to the sending TCP
	# socket, and TCP small queues then lets only ~2 packets per delay period
	# through (0.3 MB/s at 20 ms). Arriving packets are already orphaned.
	nsx "$HNS" iptables -w -t mangle -A PREROUTING -i eth0 -m comment --comment netlab-delay \
		-j NFQUEUE --queue-num $QNUM --queue-bypass || { delay_off; die "could not add the NFQUEUE rule in $HNS"; }
	note "delay $H: ${2}ms${3:+ +0..${3}ms jitter} on packets it receives"
}

cmd_pids() { need_root; [[ $# -eq 1 ]] || die "usage: $PROG pids HOST"; host "$1"; procs_in "$HNS"; }

cmd_signal() {
	need_root
	[[ $# -eq 2 ]] || die "usage: $PROG signal HOST SIG   (e.g. KILL, STOP, CONT, TERM)"
	host "$1"
	local sig=${2#SIG} pids
	kill -l "$sig" >/dev/null 2>&1 || die "signal: unknown signal '$2'"
	pids=$(procs_in "$HNS" | tr '\n' ' ')
	[[ -n ${pids// /} ]] || die "signal: no processes running in $H"
	kill -s "$sig" $pids
	note "sent SIG$sig to $H: $pids"
}

cmd_sandbox() {
	# New net+mount+PID namespaces (+ user namespace when not root). CMD runs under
	# a shell that is PID 1 of the new PID namespace: when it ends, the kernel kills
	# every process left in there (delay helpers, servers), and with the private
	# /run the lab's namespaces are unreachable and freed. Nothing can leak.
	[[ $# -ge 1 ]] || die "usage: $PROG sandbox CMD [ARGS...]"
	need unshare "util-linux is required"
	local flags=(--net --mount --propagation private --pid --fork --mount-proc --kill-child)
	[[ $EUID -eq 0 ]] || flags=(--user --map-root-user "${flags[@]}")
	unshare "${flags[@]}" -- sh -c 'mount -t tmpfs -o mode=755 netlab-run /run && ip link set lo up && "$@"' \
		netlab-sandbox "$@" && return 0
	local rc=$?
	if ! unshare "${flags[@]}" -- true 2>/dev/null; then
		die "unshare failed: user/net namespaces not available here (check /proc/sys/user/max_user_namespaces, kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns)"
	fi
	exit $rc
}

CMD=${1:-help}; shift || true
case $CMD in
	up) cmd_up "$@" ;;
	down) [[ $# -eq 0 ]] || die "usage: $PROG down"; cmd_down ;;
	status) cmd_status ;;
	ip) need_root; [[ $# -eq 1 ]] || die "usage: $PROG ip HOST"; host "$1"; echo "$HIP" ;;
	exec) cmd_exec "$@" ;;
	cut) cmd_cut "$@" ;;
	heal) cmd_heal "$@" ;;
	isolate) cmd_isolate "$@" ;;
	rejoin) cmd_rejoin "$@" ;;
	delay) cmd_delay "$@" ;;
	loss) cmd_loss "$@" ;;
	pids) cmd_pids "$@" ;;
	signal) cmd_signal "$@" ;;
	sandbox) cmd_sandbox "$@" ;;
	help | -h | --help) usage ;;
	*) usage >&2; die "unknown command '$CMD'" ;;
esac
exit 0

# ---- embedded source of the delay helper (built on first 'delay') ----
: <<'__NETLAB_DELAY_GO__'
// netlab-delay: userspace packet delayer for kernels without sch_netem.
// It binds an NFQUEUE (fed by an iptables -j NFQUEUE rule in the same
// network namespace) and accepts each packet only after -delay has passed.
// Copy mode is META, so no payload is copied to userspace. Stdlib only.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	netlinkNetfilter = 12
	subsysQueue      = 3
	msgPacket        = subsysQueue<<8 | 0
	msgVerdict       = subsysQueue<<8 | 1
	msgConfig        = subsysQueue<<8 | 2
	cfgCmd           = 1
	cfgParams        = 2
	cfgQueueMaxlen   = 3
	cfgMask          = 4
	cfgFlags         = 5
	cmdBind          = 1
	copyMeta         = 1
	flagGSO          = 1 << 2
	attrPacketHdr    = 1
	attrVerdictHdr   = 2
	nfAccept         = 1
	nlmsgError       = 2
	nlmsgHdrLen      = 16
)

var ne = binary.NativeEndian

type pending struct {
	id  uint32
	due time.Time
}

func attr(typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b := make([]byte, (l+3)&^3)
	ne.PutUint16(b[0:], uint16(l))
	ne.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

func msg(typ, flags uint16, seq uint32, queue uint16, attrs ...[]byte) []byte {
	b := make([]byte, nlmsgHdrLen+4)
	for _, a := range attrs {
		b = append(b, a...)
	}
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seq)
	b[16] = syscall.AF_UNSPEC
	b[17] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:], queue)
	return b
}

func be32(v uint32) []byte { b := make([]byte, 4); binary.BigEndian.PutUint32(b, v); return b }

// request sends a config message and waits for its ACK.
func request(fd int, seq uint32, m []byte) error {
	if err := syscall.Sendto(fd, m, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		for off := 0; off+nlmsgHdrLen <= n; {
			l := int(ne.Uint32(buf[off:]))
			if l < nlmsgHdrLen || off+l > n {
				break
			}
			if ne.Uint16(buf[off+4:]) == nlmsgError && ne.Uint32(buf[off+8:]) == seq {
				if e := int32(ne.Uint32(buf[off+16:])); e != 0 {
					return syscall.Errno(-e)
				}
				return nil
			}
			off += (l + 3) &^ 3
		}
	}
}

func main() {
	queue := flag.Uint("queue", 0, "NFQUEUE number to bind")
	delay := flag.Duration("delay", 100*time.Millisecond, "delay added to every queued packet")
	jitter := flag.Duration("jitter", 0, "extra uniform random delay in [0,jitter) (order is kept)")
	maxlen := flag.Uint("maxlen", 20000, "kernel queue length; packets beyond it are dropped (like netem's limit)")
	pidfile := flag.String("pidfile", "", "write own pid here once the queue is bound")
	flag.Parse()

	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkNetfilter)
	if err != nil {
		fatal("socket: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		fatal("bind: %v", err)
	}
	// Big receive buffer; SO_RCVBUFFORCE needs real root, fall back otherwise.
	if syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 16<<20) != nil {
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<20)
	}
	_ = syscall.SetsockoptInt(fd, 270 /*SOL_NETLINK*/, 5 /*NETLINK_NO_ENOBUFS*/, 1)

	q := uint16(*queue)
	const reqAck = syscall.NLM_F_REQUEST | syscall.NLM_F_ACK
	steps := []struct {
		what string
		m    []byte
	}{
		{"bind", msg(msgConfig, reqAck, 1, q, attr(cfgCmd, []byte{cmdBind, 0, 0, 0}))},
		{"params", msg(msgConfig, reqAck, 2, q, attr(cfgParams, append(be32(0), copyMeta)))},
		{"maxlen", msg(msgConfig, reqAck, 3, q, attr(cfgQueueMaxlen, be32(uint32(*maxlen))))},
		{"flags", msg(msgConfig, reqAck, 4, q, attr(cfgMask, be32(flagGSO)), attr(cfgFlags, be32(flagGSO)))},
	}
	for _, s := range steps {
		if err := request(fd, ne.Uint32(s.m[8:]), s.m); err != nil {
			fatal("queue %d %s: %v", q, s.what, err)
		}
	}

	var mu sync.Mutex // serialises verdict sends
	accept := func(id uint32) {
		m := msg(msgVerdict, syscall.NLM_F_REQUEST, 0, q, attr(attrVerdictHdr, append(be32(nfAccept), be32(id)...)))
		mu.Lock()
		_ = syscall.Sendto(fd, m, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK})
		mu.Unlock()
	}

	ch := make(chan pending, 1<<20)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // releases packets in FIFO order when due
		defer close(done)
		flushing := false
		for p := range ch {
			if !flushing {
				if d := time.Until(p.due); d > 0 {
					select {
					case <-time.After(d):
					case <-stop:
						flushing = true
					}
				}
			}
			accept(p.id)
		}
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		close(stop) // release everything still held, then exit
		for {
			select {
			case p := <-ch:
				accept(p.id)
			default:
				os.Exit(0)
			}
		}
	}()

	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fatal("pidfile: %v", err)
		}
	}
	fmt.Fprintf(os.Stderr, "netlab-delay: queue %d bound, delay %v jitter %v\n", q, *delay, *jitter)

	buf := make([]byte, 1<<16)
	var last time.Time
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == syscall.EINTR || err == syscall.ENOBUFS {
				continue
			}
			fatal("recv: %v", err)
		}
		now := time.Now()
		for off := 0; off+nlmsgHdrLen <= n; {
			l := int(ne.Uint32(buf[off:]))
			if l < nlmsgHdrLen || off+l > n {
				break
			}
			if ne.Uint16(buf[off+4:]) == msgPacket {
				for a := off + nlmsgHdrLen + 4; a+4 <= off+l; {
					al := int(ne.Uint16(buf[a:]))
					if al < 4 {
						break
					}
					if ne.Uint16(buf[a+2:])&0x3fff == attrPacketHdr && al >= 8 {
						due := now.Add(*delay)
						if *jitter > 0 {
							due = due.Add(time.Duration(rand.Int63n(int64(*jitter))))
						}
						if due.Before(last) {
							due = last
						}
						last = due
						ch <- pending{binary.BigEndian.Uint32(buf[a+4:]), due}
						break
					}
					a += (al + 3) &^ 3
				}
			}
			off += (l + 3) &^ 3
		}
	}
}

func fatal(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "netlab-delay: "+f+"\n", a...)
	os.Exit(1)
}
__NETLAB_DELAY_GO__
