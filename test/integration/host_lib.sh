# shellcheck shell=bash disable=SC2034
# Shared parts of the host-mode namespace tests (host_transport.sh,
# host_restart.sh, host_frag.sh): prerequisites, background processes,
# the two hosts' addresses and keys, the daemons, captures on the link.
# Source after netns_lib.sh, with IPSECIFD and IPSECIFCTL set.

PY=/usr/bin/python3

# host_prereqs TOOL...: exit 77 ("skipped") without the tools, python3 or
# network namespaces.
host_prereqs() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "SKIP: needs $tool"
            exit 77
        fi
    done
    if [ ! -x "$PY" ]; then
        echo "SKIP: needs $PY"
        exit 77
    fi
    if ! ip netns add "$NSA" 2>/dev/null; then
        echo "SKIP: cannot make network namespaces"
        exit 77
    fi
    ip netns del "$NSA"
}

# Background processes (captures, servers) killed at exit; HOST_EXTRA_NS
# names namespaces of the test's own to remove besides netns_lib's.
BG=
HOST_EXTRA_NS=
host_cleanup() {
    local rc=$? p ns
    set +e
    for p in $BG; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    for ns in $HOST_EXTRA_NS; do
        ip netns del "$ns" 2>/dev/null || true
    done
    (exit "$rc")
    cleanup
}
trap host_cleanup EXIT

# The hosts A and B on their veth pair (veth-a in NSA).
A4=198.51.100.1
B4=198.51.100.2
A6=2001:db8:ff::1
B6=2001:db8:ff::2
# Cleartext between the hosts: IPv4 that is not ESP or AH (fragments carry
# the protocol in every header), IPv6 that is neither ESP nor AH nor a
# fragment of them, neighbour discovery aside.
LEAK="(ip and host $A4 and host $B4 and not ip proto 50 and not ip proto 51) or
 (ip6 and host $A6 and host $B6 and not ip6 proto 50 and not ip6 proto 51 and
  not (ip6[6] = 44 and (ip6[40] = 50 or ip6[40] = 51)) and
  not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137))"

# Keys: AES-GCM (16 + 4 salt), HMAC-SHA-256.
KG1=0x0102030405060708090a0b0c0d0e0f1011121314
KG2=0x2122232425262728292a2b2c2d2e2f3031323334
KG3=0x4142434445464748494a4b4c4d4e4f5051525354
KG4=0x6162636465666768696a6b6c6d6e6f7071727374
KH1=0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
KH2=0x202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f
KH3=0x404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f
KH4=0x606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f

PIDA=
PIDB=
# start_daemon SIDE NS [FLAGS...]: a daemon with -H and the flags, sockets
# and log WORK/SIDE.*; sets PIDA (side A or GA) or PIDB (B, GB).
start_daemon() {
    local side=$1 ns=$2 pid
    shift 2
    rm -f "$WORK/$side.sock" "$WORK/$side.pfkey"
    ip netns exec "$ns" "$IPSECIFD" -f -l debug -H "$@" -s "$WORK/$side.sock" \
        -p "$WORK/$side.pid" </dev/null >>"$WORK/$side.log" 2>&1 &
    pid=$!
    case $side in
    A | GA) PIDA=$pid ;;
    *) PIDB=$pid ;;
    esac
    for _ in $(seq 50); do
        [ -S "$WORK/$side.sock" ] && [ -S "$WORK/$side.pfkey" ] && return 0
        kill -0 "$pid" 2>/dev/null || fail "daemon $side exited at start"
        sleep 0.1
    done
    fail "daemon $side made no sockets"
}

# capture_start NAME [NS DEV] (default A's veth-a) / capture_stop /
# count FILTER: packets of the last capture that match. In immediate mode
# libpcap's ring holds buffer/snaplen frames: with the default snaplen and
# buffer only a few, and a busy machine (sanitizer builds) lost most of a
# burst. Only headers are kept (-s 160) in a large buffer (-B, KiB);
# capture_stop says when the kernel still dropped packets, since a dropped
# packet could hide a leak.
CAP_PID=
capture_start() {
    CAP=$WORK/$1.pcap
    : >"$WORK/$1.tcpdump.log"
    ip netns exec "${2:-$NSA}" tcpdump -i "${3:-veth-a}" -n -U --immediate-mode -s 160 -B 16384 -w "$CAP" \
        2>"$WORK/$1.tcpdump.log" &
    CAP_PID=$!
    BG="$BG $CAP_PID"
    for _ in $(seq 50); do
        grepq 'listening on' "$WORK/$1.tcpdump.log" && return 0
        sleep 0.1
    done
    fail "tcpdump did not start"
}
capture_stop() {
    local lost
    sleep 0.3
    kill -INT "$CAP_PID" 2>/dev/null || true
    wait "$CAP_PID" 2>/dev/null || true
    lost=$(awk '/dropped by kernel/ { print $1 }' "${CAP%.pcap}.tcpdump.log")
    [ "${lost:-0}" -eq 0 ] || echo "  note: the capture lost $lost packets in the kernel"
}
count() {
    tcpdump -r "$CAP" -n "$1" 2>/dev/null | wc -l
}
# no_leak WHAT: the last capture holds no cleartext between the hosts.
no_leak() {
    local leak
    leak=$(count "$LEAK")
    if [ "$leak" -ne 0 ]; then
        tcpdump -r "$CAP" -n -c 5 "$LEAK" 2>/dev/null || true
        fail "$leak cleartext packets between the hosts ($1)"
    fi
}

# stat_of SIDE TEXT: a counter of `ipsecifctl stats`.
stat_of() {
    ctl "$1" stats | awk -v t="$2" '{ n = $1; $1 = ""; sub(/^ /, ""); if ($0 == t) print n }'
}

# pings NS ADDR...: 3 echoes to each, all answered.
pings() {
    local ns=$1 a
    shift
    for a in "$@"; do
        in_ns "$ns" ping -c 3 -i 0.2 -W 2 "$a" >/dev/null || fail "ping $a from $ns"
    done
}
