#!/usr/bin/env bash
# Large TCP transfers through ipsec0 with the TUN offloads on: the data
# (a digest of 24 MiB each way) must arrive intact over IPv4 and IPv6 inner,
# over raw ESP and over ESP in UDP (link0), and the port's counters must
# show that super-packets were read and segmented (sender), segments were
# coalesced on write (receiver), received and sent in batches, and ESP in
# UDP left as UDP GSO sends. Super-packets cut at an MSS the interface MTU
# does not allow get ICMP too-big, and the transfer goes on. Then the same with ipsecifd -O (offloads
# off): intact again, no offload counted. The daemons hand what they read
# to the library in batches (fewer calls than packets); with OPTS "-B 1"
# (one call per packet) everything else must hold as well.
#
# usage: tun_offload.sh IPSECIFD IPSECIFCTL [OPTS]  (OPTS: more daemon options)
# Needs root and python3 (exit 77, "skipped", otherwise).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")
EXTRA=${3:-}
TCP=$(dirname "$(readlink -f "$0")")/tcp_offload.py
BYTES=$((24 * 1024 * 1024))

NETNS_TAG=offl
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"
if ! [ -x /usr/bin/python3 ]; then
    echo "SKIP: needs python3"
    exit 77
fi

step "namespaces $NSA and $NSB, veth on 198.51.100.0/24"
ip netns add "$NSA"
ip netns add "$NSB"
ip link add veth-a netns "$NSA" type veth peer name veth-b netns "$NSB"
in_ns "$NSA" ip link set lo up
in_ns "$NSB" ip link set lo up
in_ns "$NSA" ip addr add 198.51.100.1/24 dev veth-a
in_ns "$NSB" ip addr add 198.51.100.2/24 dev veth-b
in_ns "$NSA" ip link set veth-a up
in_ns "$NSB" ip link set veth-b up

K1=0x0102030405060708090a0b0c0d0e0f1011121314
K2=0x2122232425262728292a2b2c2d2e2f3031323334
K3=0x4142434445464748494a4b4c4d4e4f5051525354
K4=0x6162636465666768696a6b6c6d6e6f7071727374

unique_ids() {
    sed -n 's/.*unique id: v4 out \([0-9]*\) in \([0-9]*\), v6 out \([0-9]*\) in \([0-9]*\).*/\1 \2 \3 \4/p' "$1"
}

# start OPTS: both daemons with OPTS, ipsec0 4in4/6in4, SAs by hand.
start() {
    local opts="$1 $EXTRA"
    # Not through a shell function: "ip netns exec" execs the daemon, so $! is its pid.
    # shellcheck disable=SC2086 # opts: words on purpose
    ip netns exec "$NSA" "$IPSECIFD" $opts -f -x -l info -s "$WORK/A.sock" -p "$WORK/A.pid" \
        </dev/null >>"$WORK/A.log" 2>&1 &
    PIDA=$!
    # shellcheck disable=SC2086
    ip netns exec "$NSB" "$IPSECIFD" $opts -f -x -l info -s "$WORK/B.sock" -p "$WORK/B.pid" \
        </dev/null >>"$WORK/B.log" 2>&1 &
    PIDB=$!
    for _ in $(seq 50); do
        [ -S "$WORK/A.sock" ] && [ -S "$WORK/B.sock" ] && break
        sleep 0.1
    done
    [ -S "$WORK/A.sock" ] && [ -S "$WORK/B.sock" ] || fail "control sockets did not appear"
    ctl A ifconfig ipsec0 create tunnel 198.51.100.1 198.51.100.2 inet 192.0.2.1/32 192.0.2.2 \
        inet6 2001:db8:1::1/64 up
    ctl B ifconfig ipsec0 create tunnel 198.51.100.2 198.51.100.1 inet 192.0.2.2/32 192.0.2.1 \
        inet6 2001:db8:1::2/64 up
    sas
}

# sas [PORT]: flush and add the four SAs (ESP in UDP on PORT when given).
sas() {
    local pa="" pb="" esp=esp
    if [ -n "${1:-}" ]; then
        pa="[$1]"
        pb="[$1]"
        esp="esp-udp"
    fi
    ctl A setkey -F
    ctl B setkey -F
    ctl A ifconfig ipsec0 >"$WORK/ifA.txt"
    ctl B ifconfig ipsec0 >"$WORK/ifB.txt"
    read -r A4O A4I A6O A6I <<<"$(unique_ids "$WORK/ifA.txt")"
    read -r B4O B4I B6O B6I <<<"$(unique_ids "$WORK/ifB.txt")"
    ctl A setkey -c <<EOT
add 198.51.100.1$pa 198.51.100.2$pb $esp 0x1000 -m transport -u $A4O -E aes-gcm-16 $K1;
add 198.51.100.2$pb 198.51.100.1$pa $esp 0x1001 -m transport -u $A4I -E aes-gcm-16 $K2;
add 198.51.100.1$pa 198.51.100.2$pb $esp 0x2000 -m transport -u $A6O -E aes-gcm-16 $K3;
add 198.51.100.2$pb 198.51.100.1$pa $esp 0x2001 -m transport -u $A6I -E aes-gcm-16 $K4;
EOT
    ctl B setkey -c <<EOT
add 198.51.100.1$pa 198.51.100.2$pb $esp 0x1000 -m transport -u $B4I -E aes-gcm-16 $K1;
add 198.51.100.2$pb 198.51.100.1$pa $esp 0x1001 -m transport -u $B4O -E aes-gcm-16 $K2;
add 198.51.100.1$pa 198.51.100.2$pb $esp 0x2000 -m transport -u $B6I -E aes-gcm-16 $K3;
add 198.51.100.2$pb 198.51.100.1$pa $esp 0x2001 -m transport -u $B6O -E aes-gcm-16 $K4;
EOT
    for _ in $(seq 30); do
        in_ns "$NSA" ping -c 1 -W 1 -q 192.0.2.2 >/dev/null 2>&1 && return 0
    done
    fail "no ping through the tunnel"
}

stop_daemons() {
    stop "$PIDA"
    stop "$PIDB"
    PIDA=
    PIDB=
}

# transfer FROM_NS TO_NS DST: BYTES from FROM_NS to DST (in TO_NS), digests compared.
transfer() {
    local from=$1 to=$2 dst=$3 port=$((5000 + RANDOM % 1000)) rpid sent got
    rm -f "$WORK/ready" "$WORK/recv.txt"
    ip netns exec "$to" /usr/bin/python3 "$TCP" recv "$dst" "$port" "$WORK/ready" \
        >"$WORK/recv.txt" 2>"$WORK/recv.err" &
    rpid=$!
    for _ in $(seq 100); do
        [ -e "$WORK/ready" ] && break
        sleep 0.05
    done
    sent=$(ip netns exec "$from" /usr/bin/python3 "$TCP" send "$dst" "$port" "$BYTES" "seed$port") ||
        fail "sender to $dst failed"
    wait "$rpid" || fail "receiver at $dst failed: $(cat "$WORK/recv.err")"
    got=$(cat "$WORK/recv.txt")
    echo "sent: $sent; received: $got"
    [ "$sent" = "$got" ] || fail "data to $dst did not arrive intact"
    [ "${sent%% *}" -eq "$BYTES" ] || fail "sent ${sent%% *} bytes, not $BYTES"
}

# counter SIDE NAME: a port counter from ipsecifctl stats.
counter() {
    ctl "$1" stats | pick "$2"
}

# pick NAME: the counter NAME of the stats on standard input, so that
# counters compared with each other come from one snapshot.
pick() {
    awk -v n="$1" '$2 == n { print $1; f = 1 } END { if (!f) print "missing" }'
}

step "offloads on: virtio headers on ipsec0"
start ""
grepq -i 'TUNSETOFFLOAD' "$WORK/A.log" && fail "TUNSETOFFLOAD refused: $(grep -i TUNSETOFFLOAD "$WORK/A.log")"

step "IPv4 inner, A -> B, raw ESP"
transfer "$NSA" "$NSB" 192.0.2.2
step "IPv6 inner, B -> A, raw ESP"
transfer "$NSB" "$NSA" 2001:db8:1::1
ctl A stats | sed -n '/^port:/,$p'
for side in A B; do
    for c in tun_gso_in tun_segments tun_gro_out tun_gro_segs outer_rx_batches outer_tx_batches; do
        v=$(counter "$side" "$c")
        [ "$v" != missing ] || fail "$side: no counter $c in ipsecifctl stats"
        [ "$v" -gt 0 ] || fail "$side: $c is $v after the transfers"
    done
    segs=$(counter "$side" tun_segments)
    sup=$(counter "$side" tun_gso_in)
    [ "$segs" -gt $((2 * sup)) ] || fail "$side: $segs segments of $sup super-packets"
    [ "$(counter "$side" tun_gso_drop)" -eq 0 ] || fail "$side: tun_gso_drop"
    [ "$(counter "$side" tun_tx_errors)" -eq 0 ] || fail "$side: TUN write errors"
done
# Fewer system calls than packets: batches carry several each. A late
# packet (a TCP timer's) may still pass: each side's counters come from
# one snapshot.
snap_a=$(ctl A stats)
snap_b=$(ctl B stats)
rx=$(pick outer_rx_packets <<<"$snap_b")
rb=$(pick outer_rx_batches <<<"$snap_b")
echo "B: $rx outer packets in $rb recvmmsg batches"
[ "$rb" -lt "$rx" ] || fail "B: $rb recvmmsg batches for $rx packets"
# Library calls: batches unless -B 1 asks for one per packet.
oc=$(pick tun_out_calls <<<"$snap_a")
segs=$(pick tun_segments <<<"$snap_a")
rc=$(pick outer_rx_calls <<<"$snap_b")
echo "A: $segs segments in $oc output calls; B: $rx outer packets in $rc input calls"
case " $EXTRA " in
*" -B 1 "*)
    [ "$oc" -ge "$segs" ] || fail "A: -B 1 but $oc output calls for $segs segments"
    [ "$rc" -eq "$rx" ] || fail "B: -B 1 but $rc input calls for $rx packets"
    ;;
*)
    [ $((4 * oc)) -lt "$segs" ] || fail "A: $oc output calls for $segs segments (no batches)"
    [ "$rc" -lt "$rx" ] || fail "B: $rc input calls for $rx packets (no batches)"
    ;;
esac

step "super-packets whose segments exceed the MTU: ICMP too-big, then segments that fit"
# The kernel's ipsec0 on both sides takes MTU 1400 while the interfaces
# keep 1280 (B's too, or B would announce an MSS for 1280): A's TCP cuts
# at MSS 1360 and 1340, the daemon refuses such super-packets
# with one ICMP error each (its first segment's), and TCP goes on at the
# path MTU the error gives.
in_ns "$NSA" ip link set ipsec0 mtu 1400
in_ns "$NSB" ip link set ipsec0 mtu 1400
tb0=$(counter A tun_gso_toobig)
ob0=$(ctl A stats | awk '/outbound packets too big/ { print $1 }')
transfer "$NSA" "$NSB" 192.0.2.2
transfer "$NSA" "$NSB" 2001:db8:1::2
tb1=$(counter A tun_gso_toobig)
ob1=$(ctl A stats | awk '/outbound packets too big/ { print $1 }')
echo "A: segments dropped over the MTU $tb0 -> $tb1, ICMP too-big sent $ob0 -> $ob1"
[ "$tb1" -gt "$tb0" ] || fail "A: no super-packet refused over the MTU"
[ "$ob1" -gt "$ob0" ] || fail "A: no ICMP too-big for super-packets over the MTU"
# IPv4 errors go out on a raw socket as the host's own packets: written to
# ipsec0 they would be dropped as martians (their source is a local address).
ic=$(counter A icmp4_sent)
echo "A: IPv4 ICMP errors sent $ic, refused $(counter A icmp4_send_errors)"
[ "$ic" -gt 0 ] || fail "A: no IPv4 ICMP error sent on the raw socket"
in_ns "$NSA" ip link set ipsec0 mtu 1280
in_ns "$NSB" ip link set ipsec0 mtu 1280

step "ESP in UDP (link0), IPv4 inner, A -> B"
ctl A ifconfig ipsec0 link0
ctl B ifconfig ipsec0 link0
sas 4500
gso0=$(counter A outer_udp_gso)
transfer "$NSA" "$NSB" 192.0.2.2
gso1=$(counter A outer_udp_gso)
echo "A: UDP GSO sends $gso0 -> $gso1, packets in them $(counter A outer_udp_gso_segs)," \
    "refused $(counter A outer_udp_gso_off)"
if [ "$(printf '%s\n' "4.18" "$(uname -r)" | sort -V | head -n1)" = "4.18" ]; then
    [ "$gso1" -gt "$gso0" ] || fail "A: no UDP GSO send for ESP in UDP"
fi
step "ESP in UDP, IPv6 inner, B -> A"
transfer "$NSB" "$NSA" 2001:db8:1::1
stop_daemons

step "offloads off (-O): intact, nothing offloaded"
start "-O"
transfer "$NSA" "$NSB" 192.0.2.2
transfer "$NSB" "$NSA" 2001:db8:1::1
for side in A B; do
    for c in tun_gso_in tun_gro_out outer_udp_gso; do
        [ "$(counter "$side" "$c")" -eq 0 ] || fail "$side: $c counted with -O"
    done
done
stop_daemons
echo "PASS"
