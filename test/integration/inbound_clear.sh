#!/usr/bin/env bash
# Inbound cleartext and ipsecifd -r: two routers in network namespaces
# joined by a veth pair, ipsec0 between them with manual SAs. From B's
# outer side, cleartext goes to A over the veth:
#   - echo requests to A's inner addresses (ping bound to veth-b, so they
#     take B's default route instead of ipsec0), IPv4 and IPv6;
#   - echo requests with B's inner addresses as spoofed sources (scapy) to
#     A's outer addresses, IPv4 and IPv6.
# Without -r, A answers them all (control: replies and A's InEchos
# counters). With -r (nftables table inet ipsecif) they are dropped: no
# reply, InEchos unchanged, the table's counters count them; tunnel pings,
# plain outer pings and neighbour discovery still work. The table stays
# when the daemon stops (as the interfaces do) and goes with -x; without
# nft the daemon refuses -r with a clear message.
#
# usage: inbound_clear.sh IPSECIFD IPSECIFCTL
# Needs root (exit 77, "skipped", otherwise), nft and scapy.
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")

NETNS_TAG=inclr
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

PY=/usr/bin/python3
if ! command -v nft >/dev/null 2>&1; then
    echo "SKIP: needs nft (nftables)"
    exit 77
fi
if ! "$PY" -c 'import scapy.all' >/dev/null 2>&1; then
    echo "SKIP: needs scapy ($PY)"
    exit 77
fi

INNER4_A=192.0.2.1
INNER4_B=192.0.2.2
INNER6_A=2001:db8:1::1
INNER6_B=2001:db8:1::2
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
# The kernel's own reverse-path filter off in A, so that the control shows
# what the host accepts without the daemon's filter.
for c in all default veth-a; do
    in_ns "$NSA" sysctl -qw "net.ipv4.conf.$c.rp_filter=0"
done
MAC_A=$(in_ns "$NSA" cat /sys/class/net/veth-a/address)

# start_daemon A|B [FLAGS...]
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

stop_a() {
    local rc=0
    kill -TERM "$PIDA"
    wait "$PIDA" || rc=$?
    PIDA=
    [ "$rc" -eq 0 ] || fail "A exited $rc"
}

configure() {
    if [ "$1" = A ]; then
        ctl A ifconfig ipsec0 create tunnel 198.51.100.1 198.51.100.2 \
            inet "$INNER4_A/32" "$INNER4_B" inet6 "$INNER6_A/64" up
    else
        ctl B ifconfig ipsec0 create tunnel 198.51.100.2 198.51.100.1 \
            inet "$INNER4_B/32" "$INNER4_A" inet6 "$INNER6_B/64" up
    fi
}

unique_ids() {
    ctl "$1" ifconfig ipsec0 |
        sed -n 's/.*unique id: v4 out \([0-9]*\) in \([0-9]*\), v6 out \([0-9]*\) in \([0-9]*\).*/\1 \2 \3 \4/p'
}

# keys: fresh SAs on both sides.
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

# tunnel_pings: both ways through ipsec0, IPv4 and IPv6; and plain pings
# between the outer addresses (neighbour discovery included).
tunnel_pings() {
    local ok=0
    in_ns "$NSA" ping -c 2 -W 2 "$INNER4_B" >/dev/null || fail "IPv4 ping A -> B through the tunnel"
    in_ns "$NSB" ping -c 2 -W 2 "$INNER4_A" >/dev/null || fail "IPv4 ping B -> A through the tunnel"
    for _ in 1 2 3; do
        if in_ns "$NSA" ping -6 -c 2 -W 2 "$INNER6_B" >/dev/null &&
            in_ns "$NSB" ping -6 -c 2 -W 2 "$INNER6_A" >/dev/null; then
            ok=1
            break
        fi
        sleep 1
    done
    [ "$ok" -eq 1 ] || fail "IPv6 pings through the tunnel"
    in_ns "$NSA" ip neigh flush dev veth-a
    in_ns "$NSB" ip neigh flush dev veth-b
    in_ns "$NSB" ping -c 2 -W 2 198.51.100.1 >/dev/null || fail "plain IPv4 ping to A's outer address"
    in_ns "$NSB" ping -6 -c 2 -W 2 2001:db8:ff::1 >/dev/null ||
        fail "plain IPv6 ping to A's outer address"
}

# Echo requests A's kernel took in, IPv4 and IPv6.
in_echos4() {
    in_ns "$NSA" awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 }
        else print $(c["InEchos"]) }' /proc/net/snmp
}
in_echos6() {
    in_ns "$NSA" awk '$1 == "Icmp6InEchos" { print $2 }' /proc/net/snmp6
}

# nft_count COMMENT: packets counted by the table's rules with that comment.
nft_count() {
    in_ns "$NSA" nft list chain inet ipsecif prerouting |
        awk -v c="comment \"$1\"" 'index($0, c) { for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) }
            END { print n + 0 }'
}

# probes: cleartext from B's outer side. Sets R4/R6 (replies to the pings
# to A's inner addresses), E4/E6 (A's InEchos increase, all probes).
probes() {
    local e4 e6
    e4=$(in_echos4)
    e6=$(in_echos6)
    R4=0
    R6=0
    if in_ns "$NSB" ping -I veth-b -c 3 -i 0.2 -W 1 "$INNER4_A" >"$WORK/p4.txt" 2>&1; then
        R4=1
    fi
    if in_ns "$NSB" ping -6 -I veth-b -c 3 -i 0.2 -W 1 "$INNER6_A" >"$WORK/p6.txt" 2>&1; then
        R6=1
    fi
    # Spoofed inner sources: B's own inner addresses, sent on the outer link.
    in_ns "$NSB" "$PY" - "$MAC_A" <<'EOF'
import sys
import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPv6, ICMP, ICMPv6EchoRequest, sendp
mac = sys.argv[1]
pkts = [Ether(dst=mac) / IP(src="192.0.2.2", dst="198.51.100.1") / ICMP(id=7, seq=i)
        for i in range(5)]
pkts += [Ether(dst=mac) / IPv6(src="2001:db8:1::2", dst="2001:db8:ff::1") /
         ICMPv6EchoRequest(id=7, seq=i) for i in range(5)]
sendp(pkts, iface="veth-b", verbose=False)
EOF
    sleep 0.5
    E4=$(($(in_echos4) - e4))
    E6=$(($(in_echos6) - e6))
    echo "replies: IPv4 $R4, IPv6 $R6; A took in $E4 IPv4 and $E6 IPv6 echo requests"
}

step "daemons without -r, ipsec0 on both sides, SAs"
start_daemon A
start_daemon B
configure A
configure B
keys
tunnel_pings

step "control: cleartext to A's inner addresses and from spoofed inner sources is accepted"
probes
[ "$R4" -eq 1 ] && [ "$R6" -eq 1 ] || fail "no reply to cleartext pings of the inner addresses"
# 3 pings + 5 spoofed per family.
[ "$E4" -ge 8 ] && [ "$E6" -ge 8 ] || fail "A did not take the cleartext in ($E4, $E6)"

step "A again with -r"
stop_a
start_daemon A -r
grep -q 'filter: nftables table inet ipsecif installed' "$WORK/A.log" || fail "no filter in A's log"
configure A
keys
in_ns "$NSA" nft list set inet ipsecif inner4 | grepq "$INNER4_A" || fail "inner4 set"
in_ns "$NSA" nft list set inet ipsecif inner6 | grepq "$INNER6_A" || fail "inner6 set"
in_ns "$NSA" nft list set inet ipsecif ifs | grepq '"ipsec0"' || fail "ifs set"
tunnel_pings

step "with -r: the same cleartext is dropped"
probes
[ "$R4" -eq 0 ] && [ "$R6" -eq 0 ] || fail "a cleartext ping of an inner address got a reply"
[ "$E4" -eq 0 ] && [ "$E6" -eq 0 ] || fail "A took cleartext in ($E4 IPv4, $E6 IPv6)"
n_in=$(nft_count "inner address from outside")
n_rp=$(nft_count "reverse path: from a tunnel")
echo "table counters: inner address from outside $n_in, reverse path from a tunnel $n_rp"
[ "$n_in" -ge 6 ] || fail "counter of cleartext to inner addresses: $n_in"
[ "$n_rp" -ge 10 ] || fail "counter of spoofed inner sources: $n_rp"
tunnel_pings

step "the table stays when the daemon stops (as ipsec0 does), goes with -x"
stop_a
in_ns "$NSA" nft list table inet ipsecif >/dev/null 2>&1 || fail "the table went with the daemon"
start_daemon A -r -x
ctl A ifconfig ipsec0 create
ctl A ifconfig ipsec0 | grepq "inet $INNER4_A/32" || fail "kept address not listed"
in_ns "$NSA" nft list set inet ipsecif inner4 | grepq "$INNER4_A" || fail "inner4 set after restart"
stop_a
in_ns "$NSA" nft list table inet ipsecif >/dev/null 2>&1 && fail "the table outlived -x"
in_ns "$NSA" ip link show ipsec0 >/dev/null 2>&1 && fail "ipsec0 outlived -x"

step "-r without nft: the daemon refuses to start"
rm -f "$WORK/N.sock" "$WORK/N.pfkey"
rc=0
ip netns exec "$NSA" env PATH=/nonexistent "$IPSECIFD" -f -r -s "$WORK/N.sock" \
    -p "$WORK/N.pid" </dev/null >"$WORK/N.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "the daemon started with -r and no nft"
grep -q 'nft (nftables) not found' "$WORK/N.log" || {
    cat "$WORK/N.log"
    fail "no clear message without nft"
}
echo "PASS"
