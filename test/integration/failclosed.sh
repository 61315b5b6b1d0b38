#!/usr/bin/env bash
# Fail closed when ipsecifd stops: two routers in network namespaces joined
# by a veth pair, each with a DEFAULT ROUTE out of that outer link, ipsec0
# between them with manual SAs. A flood of pings (IPv4 and IPv6 inner)
# goes through ipsec0 while tcpdump records the outer link; the daemon of A
# is killed in the middle (kill -9, then in a second round SIGTERM). The
# capture must hold ESP and not one packet with an inner address: the TUN
# device stays (persistent) and drops what is routed into it. After each
# stop a new daemon takes the device over (`ifconfig ipsec0 create` keeps
# its addresses; adding them again is no error), gets its configuration
# again, and pings pass. `ifconfig ipsec0 down` keeps the routes into it
# and drops (and counts) what they carry. Then: `ifconfig ipsec0 destroy` removes the
# device; -x removes it at exit; and, as the control that the capture check
# can fail, with ipsec0 gone the same pings leave in clear by the default
# route and the check counts them. Last, a namespace whose daemon was
# killed is deleted: its persistent device must not turn up in the initial
# namespace.
#
# usage: failclosed.sh IPSECIFD IPSECIFCTL
# Needs root (exit 77, "skipped", otherwise).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")

NETNS_TAG=fc
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

if ! command -v tcpdump >/dev/null 2>&1; then
    echo "SKIP: needs tcpdump"
    exit 77
fi

NSC=$ID-c
BG=

# Background jobs of this script (captures, floods), a third namespace.
cleanup_fc() {
    local rc=$? p
    set +e
    for p in $BG; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    ip netns del "$NSC" 2>/dev/null || true
    (exit "$rc")
    cleanup
}
trap cleanup_fc EXIT

INNER4_A=192.0.2.1
INNER4_B=192.0.2.2
INNER6_A=2001:db8:1::1
INNER6_B=2001:db8:1::2
# Anything with an inner address in its IP header is cleartext on the outer link.
LEAK="host $INNER4_A or host $INNER4_B or host $INNER6_A or host $INNER6_B"

K1=0x0102030405060708090a0b0c0d0e0f1011121314
K2=0x2122232425262728292a2b2c2d2e2f3031323334
K3=0x4142434445464748494a4b4c4d4e4f5051525354
K4=0x6162636465666768696a6b6c6d6e6f7071727374

step "namespaces $NSA and $NSB, veth on 198.51.100.0/24 and 2001:db8:ff::/64, default routes out of it"
ip netns add "$NSA"
ip netns add "$NSB"
ip link add veth-a netns "$NSA" type veth peer name veth-b netns "$NSB"
for side in A B; do
    ns=$NSA dev=veth-a me=1 peer=2
    if [ "$side" = B ]; then
        ns=$NSB dev=veth-b me=2 peer=1
    fi
    in_ns "$ns" ip link set lo up
    in_ns "$ns" ip addr add "198.51.100.$me/24" dev "$dev"
    in_ns "$ns" ip addr add "2001:db8:ff::$me/64" dev "$dev" nodad
    in_ns "$ns" ip link set "$dev" up
    in_ns "$ns" ip route add default via "198.51.100.$peer"
    in_ns "$ns" ip -6 route add default via "2001:db8:ff::$peer"
done

# start_daemon A|B [FLAGS...]: a fresh daemon on that side (stale sockets of
# a killed one removed first); sets PIDA or PIDB.
start_daemon() {
    local side=$1 ns=$NSA pid
    shift
    [ "$side" = B ] && ns=$NSB
    rm -f "$WORK/$side.sock" "$WORK/$side.pfkey"
    ip netns exec "$ns" "$IPSECIFD" -f -l debug "$@" -s "$WORK/$side.sock" \
        -p "$WORK/$side.pid" </dev/null >>"$WORK/$side.log" 2>&1 &
    pid=$!
    if [ "$side" = A ]; then PIDA=$pid; else PIDB=$pid; fi
    for _ in $(seq 50); do
        [ -S "$WORK/$side.sock" ] && [ -S "$WORK/$side.pfkey" ] && return 0
        sleep 0.1
    done
    fail "daemon $side made no sockets"
}

# unique_ids SIDE -> "v4out v4in v6out v6in" of its ipsec0
unique_ids() {
    ctl "$1" ifconfig ipsec0 |
        sed -n 's/.*unique id: v4 out \([0-9]*\) in \([0-9]*\), v6 out \([0-9]*\) in \([0-9]*\).*/\1 \2 \3 \4/p'
}

# configure SIDE [WORDS...]: ipsec0 (by default created, or taken over:
# "create"), tunnel, addresses, up.
configure() {
    local side=$1
    shift
    [ $# -gt 0 ] || set -- create
    if [ "$side" = A ]; then
        ctl A ifconfig ipsec0 "$@" tunnel 198.51.100.1 198.51.100.2 \
            inet "$INNER4_A/32" "$INNER4_B" inet6 "$INNER6_A/64" up
    else
        ctl B ifconfig ipsec0 "$@" tunnel 198.51.100.2 198.51.100.1 \
            inet "$INNER4_B/32" "$INNER4_A" inet6 "$INNER6_B/64" up
    fi
}

# keys: fresh SAs on both sides (a new replay window for the new daemon).
keys() {
    local a4o a4i a6o a6i b4o b4i b6o b6i
    read -r a4o a4i a6o a6i <<<"$(unique_ids A)"
    read -r b4o b4i b6o b6i <<<"$(unique_ids B)"
    [ -n "${a6i:-}" ] && [ -n "${b6i:-}" ] || fail "no unique ids in a listing"
    ctl A setkey -F
    ctl B setkey -F
    ctl A setkey -c <<EOF
add 198.51.100.1 198.51.100.2 esp 0x1000 -m transport -u $a4o -E aes-gcm-16 $K1;
add 198.51.100.2 198.51.100.1 esp 0x1001 -m transport -u $a4i -E aes-gcm-16 $K2;
add 198.51.100.1 198.51.100.2 esp 0x2000 -m transport -u $a6o -E aes-gcm-16 $K3;
add 198.51.100.2 198.51.100.1 esp 0x2001 -m transport -u $a6i -E aes-gcm-16 $K4;
EOF
    ctl B setkey -c <<EOF
add 198.51.100.1 198.51.100.2 esp 0x1000 -m transport -u $b4i -E aes-gcm-16 $K1;
add 198.51.100.2 198.51.100.1 esp 0x1001 -m transport -u $b4o -E aes-gcm-16 $K2;
add 198.51.100.1 198.51.100.2 esp 0x2000 -m transport -u $b6i -E aes-gcm-16 $K3;
add 198.51.100.2 198.51.100.1 esp 0x2001 -m transport -u $b6o -E aes-gcm-16 $K4;
EOF
}

# pings_pass: IPv4 and IPv6 pings from A through the tunnel.
pings_pass() {
    local ok=0
    in_ns "$NSA" ping -c 3 -W 2 -I "$INNER4_A" "$INNER4_B" >/dev/null ||
        fail "IPv4 ping through the tunnel"
    # The first echo may race the kernel's own setup of a new IPv6 route.
    for _ in 1 2 3; do
        if in_ns "$NSA" ping -6 -c 3 -W 2 "$INNER6_B" >/dev/null; then
            ok=1
            break
        fi
        sleep 1
    done
    [ "$ok" -eq 1 ] || fail "IPv6 ping through the tunnel"
}

# capture_start NAME / capture_stop: tcpdump on A's outer link.
CAP_PID=
capture_start() {
    CAP=$WORK/$1.pcap
    : >"$WORK/$1.tcpdump.log"
    ip netns exec "$NSA" tcpdump -i veth-a -n -U --immediate-mode -s 160 -B 16384 -w "$CAP" 2>"$WORK/$1.tcpdump.log" &
    CAP_PID=$!
    BG="$BG $CAP_PID"
    for _ in $(seq 50); do
        grep -q 'listening on' "$WORK/$1.tcpdump.log" && return 0
        sleep 0.1
    done
    fail "tcpdump did not start"
}
capture_stop() {
    sleep 0.3
    kill -INT "$CAP_PID" 2>/dev/null || true
    wait "$CAP_PID" 2>/dev/null || true
}
# count FILTER: packets in the last capture that match.
count() {
    tcpdump -r "$CAP" -n "$1" 2>/dev/null | wc -l
}

tx_dropped() {
    in_ns "$NSA" cat /sys/class/net/ipsec0/statistics/tx_dropped 2>/dev/null || echo 0
}

# flood_and_stop SIGNAL: ping floods from A through ipsec0 (IPv4 and IPv6
# inner, 4 s each), A's daemon gets SIGNAL after 1.5 s; no cleartext.
flood_and_stop() {
    local sig=$1 f4 f6 rc=0 esp leak drop0 drop1
    step "ping floods through ipsec0, $sig to A's daemon in the middle"
    capture_start "flood-$sig"
    drop0=$(tx_dropped)
    in_ns "$NSA" ping -q -f -w 4 "$INNER4_B" >"$WORK/f4-$sig.txt" 2>&1 &
    f4=$!
    in_ns "$NSA" ping -6 -q -f -w 4 "$INNER6_B" >"$WORK/f6-$sig.txt" 2>&1 &
    f6=$!
    BG="$BG $f4 $f6"
    sleep 1.5
    kill "-$sig" "$PIDA"
    wait "$PIDA" 2>/dev/null || rc=$?
    PIDA=
    if [ "$sig" = TERM ] && [ "$rc" -ne 0 ]; then
        fail "A exited $rc on SIGTERM"
    fi
    wait "$f4" || true
    wait "$f6" || true
    capture_stop
    cat "$WORK/f4-$sig.txt" "$WORK/f6-$sig.txt" | grep 'transmitted' || true
    esp=$(count esp)
    leak=$(count "$LEAK")
    drop1=$(tx_dropped)
    echo "capture: $esp ESP packets, $leak with an inner address; ipsec0 dropped $((drop1 - drop0))"
    [ "$esp" -ge 100 ] || fail "only $esp ESP packets before the stop: the flood did not run"
    if [ "$leak" -ne 0 ]; then
        tcpdump -r "$CAP" -n -c 5 "$LEAK" 2>/dev/null || true
        fail "$leak cleartext packets with inner addresses after $sig"
    fi
    in_ns "$NSA" ip link show ipsec0 >/dev/null 2>&1 || fail "ipsec0 went with the daemon ($sig)"
    # The floods went on after the stop: the device itself dropped them.
    [ $((drop1 - drop0)) -ge 50 ] || fail "ipsec0 dropped only $((drop1 - drop0)) packets"
}

# take_over: a new daemon on A takes ipsec0 over, configuration again, pings.
take_over() {
    local seen
    step "new daemon on A takes ipsec0 over"
    seen=$(wc -l <"$WORK/A.log")
    start_daemon A
    ctl A ifconfig ipsec0 create
    tail -n +$((seen + 1)) "$WORK/A.log" |
        grepq 'ipsec0: created on the existing device (2 addresses kept)' ||
        fail "no take-over of the kept device in A's log"
    ctl A ifconfig ipsec0 >"$WORK/ifA.txt"
    grep -q "inet $INNER4_A/32 --> $INNER4_B" "$WORK/ifA.txt" || fail "kept IPv4 address not listed"
    grep -q "inet6 $INNER6_A/64" "$WORK/ifA.txt" || fail "kept IPv6 address not listed"
    # The addresses are there already: giving them again is no error.
    configure A mtu 1280
    ctl A ifconfig ipsec0 >"$WORK/ifA.txt"
    [ "$(grep -c "inet $INNER4_A/32" "$WORK/ifA.txt")" -eq 1 ] || fail "address listed twice"
    keys
    pings_pass
}

step "daemons, ipsec0 on both sides, SAs"
start_daemon A
start_daemon B
configure A
configure B
keys
pings_pass

flood_and_stop KILL
take_over
flood_and_stop TERM
grep -q 'ipsec0: closed; the device stays' "$WORK/A.log" || fail "no 'device stays' in A's log"
take_over

step "ifconfig ipsec0 down: what is routed into it is dropped and counted, not sent in clear"
drops_out() {
    ctl A ifconfig ipsec0 | sed -n 's/.*drops: in [0-9]*, out \([0-9]*\).*/\1/p'
}
d0=$(drops_out)
ctl A ifconfig ipsec0 down
in_ns "$NSA" ip route get "$INNER4_B" | grepq 'dev ipsec0' || fail "the route into ipsec0 went with down"
capture_start down
in_ns "$NSA" ping -q -c 20 -i 0.05 -W 1 "$INNER4_B" >/dev/null 2>&1 || true
in_ns "$NSA" ping -6 -q -c 20 -i 0.05 -W 1 "$INNER6_B" >/dev/null 2>&1 || true
capture_stop
leak=$(count "$LEAK")
d1=$(drops_out)
echo "down: $leak packets with an inner address on the outer link; ipsec0 dropped $((d1 - d0)) on output"
[ "$leak" -eq 0 ] || fail "$leak cleartext packets while ipsec0 was down"
[ $((d1 - d0)) -ge 40 ] || fail "ipsec0 counted only $((d1 - d0)) output drops while down"
ctl A ifconfig ipsec0 up
pings_pass

step "ifconfig ipsec0 destroy removes the device"
ctl A ifconfig ipsec0 destroy
in_ns "$NSA" ip link show ipsec0 >/dev/null 2>&1 && fail "ipsec0 outlived destroy"
stop "$PIDA"
PIDA=

step "-x: the device goes when the daemon exits"
start_daemon A -x
configure A
keys
pings_pass
kill -TERM "$PIDA"
rc=0
wait "$PIDA" || rc=$?
PIDA=
[ "$rc" -eq 0 ] || fail "A (-x) exited $rc"
in_ns "$NSA" ip link show ipsec0 >/dev/null 2>&1 && fail "ipsec0 outlived a daemon run with -x"

step "control: without ipsec0 the same pings leave in clear, and the check sees them"
capture_start control
in_ns "$NSA" ping -c 3 -i 0.2 -W 1 "$INNER4_B" >/dev/null 2>&1 || true
in_ns "$NSA" ping -6 -c 3 -i 0.2 -W 1 "$INNER6_B" >/dev/null 2>&1 || true
capture_stop
leak=$(count "$LEAK")
echo "control capture: $leak packets with an inner address"
[ "$leak" -ge 6 ] || fail "the capture check missed cleartext pings ($leak)"

step "a deleted namespace takes its kept device with it"
DEV=ipsec$((1000 + $$ % 50000))
ip link show "$DEV" >/dev/null 2>&1 && fail "$DEV exists in the initial namespace already"
ip netns add "$NSC"
in_ns "$NSC" ip link set lo up
rm -f "$WORK/C.sock" "$WORK/C.pfkey"
ip netns exec "$NSC" "$IPSECIFD" -f -l debug -s "$WORK/C.sock" -p "$WORK/C.pid" \
    </dev/null >>"$WORK/C.log" 2>&1 &
PIDC=$!
BG="$BG $PIDC"
for _ in $(seq 50); do
    [ -S "$WORK/C.sock" ] && break
    sleep 0.1
done
ctl C ifconfig "$DEV" create inet 203.0.113.1/32 203.0.113.2 up
kill -KILL "$PIDC"
wait "$PIDC" 2>/dev/null || true
in_ns "$NSC" ip link show "$DEV" >/dev/null 2>&1 || fail "$DEV did not outlive kill -9"
ip netns del "$NSC"
for _ in $(seq 30); do
    if ip link show "$DEV" >/dev/null 2>&1; then
        fail "$DEV turned up in the initial namespace"
    fi
    sleep 0.1
done
ip -o addr show | grepq '203\.0\.113\.1/' && fail "its address turned up in the initial namespace"
echo "PASS"
