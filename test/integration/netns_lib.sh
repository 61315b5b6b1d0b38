# Shared set-up of the two-namespace router tests (sourced, not run):
# root and tool checks (exit 77, "skipped", when missing), names made from
# NETNS_TAG and the process id, a work directory, cleanup on exit (daemons
# stopped, namespaces deleted, logs shown on failure), and helpers.
# Needs IPSECIFCTL and NETNS_TAG set by the caller.

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: needs root"
    exit 77
fi
for tool in ip ping; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: needs $tool"
        exit 77
    fi
done
if [ ! -c /dev/net/tun ]; then
    echo "SKIP: needs /dev/net/tun"
    exit 77
fi

ID=ipsecif-$NETNS_TAG-$$
NSA=$ID-a
NSB=$ID-b
WORK=$(mktemp -d)
PIDA=
PIDB=

# stop PID: SIGTERM, then SIGKILL if it has not exited within 5 s.
stop() {
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

cleanup() {
    local rc=$? p
    for p in $PIDA $PIDB; do
        stop "$p"
    done
    ip netns del "$NSA" 2>/dev/null || true
    ip netns del "$NSB" 2>/dev/null || true
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        for f in "$WORK"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $(basename "$f") (last 40 lines)"
            tail -n 40 "$f"
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    exit 1
}

step() {
    echo "-- $*"
}

# ctl A|B ARGS...: ipsecifctl against that side's daemon.
ctl() {
    local side=$1
    shift
    "$IPSECIFCTL" -s "$WORK/$side.sock" "$@"
}

in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# grepq ARGS...: grep -q that reads all of its input. With pipefail, a
# `cmd | grep -q` fails now and then although it matched: grep -q stops at
# the first match and cmd dies of SIGPIPE writing the rest.
grepq() {
    grep "$@" >/dev/null
}

# veth_pair [MTU]: the namespaces NSA and NSB, made here, joined by veth-a
# (in NSA) and veth-b (in NSB) with 198.51.100.1 and .2/24 and
# 2001:db8:ff::1 and ::2/64, loopback up, and the MTU when given.
veth_pair() {
    local side ns dev me
    ip netns add "$NSA"
    ip netns add "$NSB"
    ip link add veth-a netns "$NSA" type veth peer name veth-b netns "$NSB"
    for side in A B; do
        ns=$NSA dev=veth-a me=1
        if [ "$side" = B ]; then
            ns=$NSB dev=veth-b me=2
        fi
        in_ns "$ns" ip link set lo up
        if [ -n "${1:-}" ]; then
            in_ns "$ns" ip link set "$dev" mtu "$1"
        fi
        in_ns "$ns" ip addr add "198.51.100.$me/24" dev "$dev"
        in_ns "$ns" ip addr add "2001:db8:ff::$me/64" dev "$dev" nodad
        in_ns "$ns" ip link set "$dev" up
    done
}
