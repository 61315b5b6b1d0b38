#!/usr/bin/env bash
# ipsecifd -j 2: two threads moving packets, one context under one lock.
#   - ipsec0 (outer IPv4) and ipsec1 (outer IPv6) with SPIs that hash to
#     different threads: each thread receives exactly the ESP of its SPIs
#     (the kernel filter on the raw IPv4 and IPv6 sockets), pings and TCP
#     through both arrive intact, and both threads read from their queues
#     of the TUN devices
#   - ipsec1 destroyed on A while TCP runs through it: the daemon goes on,
#     ipsec0 still carries traffic; ipsec1 made again works again
#   - a clean stop with -x removes the devices; -j with -H, -j 0 and -j 17
#     are refused
#
# usage: workers.sh IPSECIFD IPSECIFCTL
# Needs root and python3 (exit 77, "skipped", otherwise).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")
TCP=$(dirname "$(readlink -f "$0")")/tcp_offload.py

NETNS_TAG=wrk
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"
if ! [ -x /usr/bin/python3 ]; then
    echo "SKIP: needs python3"
    exit 77
fi

K1=0x0102030405060708090a0b0c0d0e0f1011121314
K2=0x2122232425262728292a2b2c2d2e2f3031323334
K3=0x4142434445464748494a4b4c4d4e4f5051525354
K4=0x6162636465666768696a6b6c6d6e6f7071727374

# share SPI: the thread (of 2) the daemon's socket filter gives SPI to:
# Fibonacci hash, high half, modulo the thread count.
share() {
    echo $(((($1 * 0x9e3779b1) & 0xffffffff) >> 16 & 0xffff))
}
# SPIs of ipsec0 go to thread 0, those of ipsec1 to thread 1.
S0AB=0x1001
S0BA=0x1002
S1AB=0x1000
S1BA=0x1003
for s in $S0AB $S0BA; do
    [ $(($(share $s) % 2)) -eq 0 ] || fail "SPI $s is not thread 0's"
done
for s in $S1AB $S1BA; do
    [ $(($(share $s) % 2)) -eq 1 ] || fail "SPI $s is not thread 1's"
done

step "refused: -j with -H, -j 0, -j 17"
for args in "-H -j 2" "-j 0" "-j 17" "-j x"; do
    # shellcheck disable=SC2086 # args: words on purpose
    if "$IPSECIFD" $args -f -s "$WORK/bad.sock" >"$WORK/bad.txt" 2>&1; then
        fail "ipsecifd $args started"
    fi
    grepq -e '-j' "$WORK/bad.txt" || fail "ipsecifd $args: no word about -j: $(cat "$WORK/bad.txt")"
done

step "namespaces, veth on 198.51.100.0/24 and 2001:db8:ff::/64, ipsecifd -j 2 on both"
veth_pair
ip netns exec "$NSA" "$IPSECIFD" -j 2 -f -x -l info -s "$WORK/A.sock" -p "$WORK/A.pid" \
    </dev/null >>"$WORK/A.log" 2>&1 &
PIDA=$!
ip netns exec "$NSB" "$IPSECIFD" -j 2 -f -x -l info -s "$WORK/B.sock" -p "$WORK/B.pid" \
    </dev/null >>"$WORK/B.log" 2>&1 &
PIDB=$!
for _ in $(seq 50); do
    [ -S "$WORK/A.sock" ] && [ -S "$WORK/B.sock" ] && break
    sleep 0.1
done
[ -S "$WORK/A.sock" ] && [ -S "$WORK/B.sock" ] || fail "control sockets did not appear"
grepq '2 threads' "$WORK/A.log" || fail "A does not say it runs 2 threads"

unique_v4() {
    sed -n 's/.*unique id: v4 out \([0-9]*\) in \([0-9]*\),.*/\1 \2/p'
}

# ipsec1 on SIDE: outer IPv6, inner 192.0.2.5/.6, its SAs.
make_if1() {
    local o i
    if [ "$1" = A ]; then
        ctl A ifconfig ipsec1 create tunnel 2001:db8:ff::1 2001:db8:ff::2 \
            inet 192.0.2.5/32 192.0.2.6 up
        read -r o i <<<"$(ctl A ifconfig ipsec1 | unique_v4)"
        ctl A setkey -c <<EOT
add 2001:db8:ff::1 2001:db8:ff::2 esp $S1AB -m transport -u $o -E aes-gcm-16 $K3;
add 2001:db8:ff::2 2001:db8:ff::1 esp $S1BA -m transport -u $i -E aes-gcm-16 $K4;
EOT
    else
        ctl B ifconfig ipsec1 create tunnel 2001:db8:ff::2 2001:db8:ff::1 \
            inet 192.0.2.6/32 192.0.2.5 up
        read -r o i <<<"$(ctl B ifconfig ipsec1 | unique_v4)"
        ctl B setkey -c <<EOT
add 2001:db8:ff::1 2001:db8:ff::2 esp $S1AB -m transport -u $i -E aes-gcm-16 $K3;
add 2001:db8:ff::2 2001:db8:ff::1 esp $S1BA -m transport -u $o -E aes-gcm-16 $K4;
EOT
    fi
}

ctl A ifconfig ipsec0 create tunnel 198.51.100.1 198.51.100.2 inet 192.0.2.1/32 192.0.2.2 up
ctl B ifconfig ipsec0 create tunnel 198.51.100.2 198.51.100.1 inet 192.0.2.2/32 192.0.2.1 up
read -r AO AI <<<"$(ctl A ifconfig ipsec0 | unique_v4)"
read -r BO BI <<<"$(ctl B ifconfig ipsec0 | unique_v4)"
ctl A setkey -c <<EOT
add 198.51.100.1 198.51.100.2 esp $S0AB -m transport -u $AO -E aes-gcm-16 $K1;
add 198.51.100.2 198.51.100.1 esp $S0BA -m transport -u $AI -E aes-gcm-16 $K2;
EOT
ctl B setkey -c <<EOT
add 198.51.100.1 198.51.100.2 esp $S0AB -m transport -u $BI -E aes-gcm-16 $K1;
add 198.51.100.2 198.51.100.1 esp $S0BA -m transport -u $BO -E aes-gcm-16 $K2;
EOT
make_if1 A
make_if1 B
for d in ipsec0 ipsec1; do
    for ns in "$NSA" "$NSB"; do
        in_ns "$ns" ip link show "$d" | grepq -i 'multi_queue' ||
            in_ns "$ns" ip -d link show "$d" | grepq -i 'multi_queue' ||
            fail "$d is not a multi-queue TUN device"
    done
done

# counter SIDE NAME: a counter of ipsecifctl stats.
counter() {
    ctl "$1" stats | awk -v n="$2" '$2 == n { print $1; f = 1 } END { if (!f) print "missing" }'
}
pings() {
    in_ns "$NSA" ping -c 10 -i 0.05 -W 1 -q "$1" >"$WORK/ping.txt" 2>&1 ||
        fail "pings to $1: $(cat "$WORK/ping.txt")"
}
# transfer DST BYTES FLOWS PORT: FLOWS TCP connections from A to DST in B
# at once (ports PORT+1 ...), each BYTES, digests compared. Files are
# named by PORT, so that two transfers may run at once.
transfer() {
    local dst=$1 bytes=$2 flows=$3 base=$4 f w
    for f in $(seq "$flows"); do
        w=$WORK/t$((base + f))
        rm -f "$w.ready"
        ip netns exec "$NSB" /usr/bin/python3 "$TCP" recv "$dst" $((base + f)) "$w.ready" \
            >"$w.recv" 2>"$w.rerr" &
        echo $! >"$w.rpid"
    done
    for f in $(seq "$flows"); do
        for _ in $(seq 100); do
            [ -e "$WORK/t$((base + f)).ready" ] && break
            sleep 0.05
        done
    done
    for f in $(seq "$flows"); do
        w=$WORK/t$((base + f))
        ip netns exec "$NSA" /usr/bin/python3 "$TCP" send "$dst" $((base + f)) "$bytes" "s$f" \
            >"$w.sent" 2>"$w.serr" &
        echo $! >"$w.spid"
    done
    for f in $(seq "$flows"); do
        w=$WORK/t$((base + f))
        wait "$(cat "$w.spid")" || fail "sender $f to $dst: $(cat "$w.serr")"
        wait "$(cat "$w.rpid")" || fail "receiver $f at $dst: $(cat "$w.rerr")"
        [ "$(cat "$w.sent")" = "$(cat "$w.recv")" ] || fail "flow $f to $dst did not arrive intact"
    done
}

step "ipsec0 (SPIs of thread 0): B's thread 0 receives its ESP, thread 1 none"
r0=$(counter B thread0_outer_rx_packets)
r1=$(counter B thread1_outer_rx_packets)
[ "$r0" != missing ] && [ "$r1" != missing ] || fail "no per-thread counters in ipsecifctl stats"
pings 192.0.2.2
n0=$(($(counter B thread0_outer_rx_packets) - r0))
n1=$(($(counter B thread1_outer_rx_packets) - r1))
echo "B: thread 0 received $n0, thread 1 $n1 ESP packets"
[ "$n0" -ge 10 ] || fail "B's thread 0 received $n0 of ipsec0's ESP packets"
[ "$n1" -eq 0 ] || fail "B's thread 1 received $n1 of ipsec0's ESP packets"

step "ipsec1 (outer IPv6, SPIs of thread 1): B's thread 1 receives its ESP, thread 0 none"
r0=$(counter B thread0_outer_rx_packets)
r1=$(counter B thread1_outer_rx_packets)
a1=$(counter A thread1_outer_rx_packets)
pings 192.0.2.6
n0=$(($(counter B thread0_outer_rx_packets) - r0))
n1=$(($(counter B thread1_outer_rx_packets) - r1))
m1=$(($(counter A thread1_outer_rx_packets) - a1))
echo "B: thread 0 received $n0, thread 1 $n1 ESP packets; A's thread 1 got $m1 replies"
[ "$n1" -ge 10 ] || fail "B's thread 1 received $n1 of ipsec1's ESP packets"
[ "$n0" -eq 0 ] || fail "B's thread 0 received $n0 of ipsec1's ESP packets"
[ "$m1" -ge 10 ] || fail "A's thread 1 received $m1 of ipsec1's replies"

step "TCP through both tunnels at once, 4 flows each: intact; both threads of A read its devices"
c0=$(counter A thread0_tun_out_calls)
c1=$(counter A thread1_tun_out_calls)
transfer 192.0.2.2 2000000 4 6000 &
t0=$!
transfer 192.0.2.6 2000000 4 6100
wait "$t0" || fail "transfer through ipsec0"
d0=$(($(counter A thread0_tun_out_calls) - c0))
d1=$(($(counter A thread1_tun_out_calls) - c1))
echo "A: output calls by thread 0 $d0, by thread 1 $d1"
[ "$d0" -gt 0 ] && [ "$d1" -gt 0 ] || fail "A's devices were not read by both threads"
ctl A stats | sed -n '/^port:/,$p'
[ "$(counter A tun_tx_errors)" -eq 0 ] || fail "A: TUN write errors"
[ "$(counter B tun_tx_errors)" -eq 0 ] || fail "B: TUN write errors"

step "ipsec1 destroyed on A while TCP runs through it: the daemon goes on"
ip netns exec "$NSB" /usr/bin/python3 "$TCP" recv 192.0.2.6 6200 "$WORK/ready-x" \
    >/dev/null 2>&1 &
RX=$!
for _ in $(seq 100); do
    [ -e "$WORK/ready-x" ] && break
    sleep 0.05
done
ip netns exec "$NSA" /usr/bin/python3 "$TCP" send 192.0.2.6 6200 400000000 x \
    >/dev/null 2>&1 &
TX=$!
sleep 1
ctl A ifconfig ipsec1 destroy
kill "$TX" "$RX" 2>/dev/null || true
wait "$TX" 2>/dev/null || true
wait "$RX" 2>/dev/null || true
kill -0 "$PIDA" || fail "A's daemon died when ipsec1 went"
in_ns "$NSA" ip link show ipsec1 >/dev/null 2>&1 && fail "ipsec1 is still there on A"
pings 192.0.2.2
transfer 192.0.2.2 1000000 2 6300

step "ipsec1 made again on A: traffic again"
# The SAs outlive the interface (they belong to the SADB): made again too.
for side in A B; do
    ctl "$side" setkey -c <<EOT
delete 2001:db8:ff::1 2001:db8:ff::2 esp $S1AB;
delete 2001:db8:ff::2 2001:db8:ff::1 esp $S1BA;
EOT
done
ctl B ifconfig ipsec1 destroy
make_if1 A
make_if1 B
pings 192.0.2.6
transfer 192.0.2.6 1000000 2 6400

step "clean stop: exit 0, devices removed (-x)"
kill -TERM "$PIDA"
rc=0
wait "$PIDA" || rc=$?
PIDA=
[ "$rc" -eq 0 ] || fail "A exited with $rc"
in_ns "$NSA" ip link show ipsec0 >/dev/null 2>&1 && fail "ipsec0 is still there on A"
echo PASS
