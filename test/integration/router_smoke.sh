#!/usr/bin/env bash
# Smoke test of the example router: two network namespaces joined by a veth
# pair on 198.51.100.0/24, ipsecifd in each, ipsec0 between them with
# AES-GCM SAs bound to the interfaces' unique ids; pings over IPv4 and IPv6
# inside the tunnel, counters, a few control-protocol checks, NAT-T, the
# tunnel destination routed into ipsec0 itself (refused by the nesting
# limit, no spinning), then SIGTERM and the TUN devices must stay (fail
# closed; failclosed.sh tests more).
#
# usage: router_smoke.sh IPSECIFD IPSECIFCTL
# Needs root (exit 77, "skipped", otherwise). Everything it creates is named
# after its process id and removed on exit.
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")

NETNS_TAG=smoke
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

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

step "daemons"
# Not through a shell function: "ip netns exec" execs the daemon, so $! is its pid.
ip netns exec "$NSA" "$IPSECIFD" -f -l debug -s "$WORK/A.sock" -p "$WORK/A.pid" \
    </dev/null >"$WORK/A.log" 2>&1 &
PIDA=$!
ip netns exec "$NSB" "$IPSECIFD" -f -l debug -s "$WORK/B.sock" -p "$WORK/B.pid" \
    </dev/null >"$WORK/B.log" 2>&1 &
PIDB=$!
for _ in $(seq 50); do
    if [ -S "$WORK/A.sock" ] && [ -S "$WORK/B.sock" ]; then
        break
    fi
    sleep 0.1
done
[ -S "$WORK/A.sock" ] && [ -S "$WORK/B.sock" ] || fail "control sockets did not appear"
[ "$(cat "$WORK/A.pid")" = "$PIDA" ] || fail "pid file of A holds $(cat "$WORK/A.pid"), not $PIDA"

step "ipsec0 on both sides"
ctl A ifconfig ipsec0 create
ctl A ifconfig ipsec0 tunnel 198.51.100.1 198.51.100.2
ctl A ifconfig ipsec0 inet 192.0.2.1/32 192.0.2.2
ctl A ifconfig ipsec0 inet6 2001:db8:1::1/64
ctl A ifconfig ipsec0 up
ctl B ifconfig ipsec0 create tunnel 198.51.100.2 198.51.100.1 inet 192.0.2.2/32 192.0.2.1 \
    inet6 2001:db8:1::2/64 up
# shows NS PATTERN CMD...: CMD's output in NS matches PATTERN within 2 s
# (the kernel may finish an address or link change just after the reply).
shows() {
    local ns=$1 pat=$2 i
    shift 2
    for i in $(seq 20); do
        if in_ns "$ns" "$@" 2>/dev/null >"$WORK/shows.txt" && grep -q "$pat" "$WORK/shows.txt"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
shows "$NSA" 'UP' ip link show ipsec0 || fail "TUN ipsec0 in A is not up"
shows "$NSB" '2001:db8:1::2/64' ip -6 addr show dev ipsec0 || fail "no IPv6 address on B's ipsec0"

ctl A ifconfig ipsec0 >"$WORK/ifA.txt"
ctl B ifconfig ipsec0 >"$WORK/ifB.txt"
cat "$WORK/ifA.txt"
grep -q '^ipsec0: flags=0x[0-9a-f]*<UP,POINTOPOINT,RUNNING' "$WORK/ifA.txt" || fail "flags line"
grep -q 'tunnel inet 198.51.100.1 --> 198.51.100.2' "$WORK/ifA.txt" || fail "tunnel line"
grep -q 'inet 192.0.2.1/32 --> 192.0.2.2' "$WORK/ifA.txt" || fail "inet line"
grep -q 'inet6 2001:db8:1::1/64' "$WORK/ifA.txt" || fail "inet6 line"

# unique_ids FILE -> "v4out v4in v6out v6in"
unique_ids() {
    sed -n 's/.*unique id: v4 out \([0-9]*\) in \([0-9]*\), v6 out \([0-9]*\) in \([0-9]*\).*/\1 \2 \3 \4/p' "$1"
}
read -r A4O A4I A6O A6I <<<"$(unique_ids "$WORK/ifA.txt")"
read -r B4O B4I B6O B6I <<<"$(unique_ids "$WORK/ifB.txt")"
[ -n "${A6I:-}" ] && [ -n "${B6I:-}" ] || fail "no unique ids in the listing"
echo "unique ids: A $A4O $A4I $A6O $A6I, B $B4O $B4I $B6O $B6I"

step "SAs (AES-GCM-16) with setkey -c"
K1=0x0102030405060708090a0b0c0d0e0f1011121314
K2=0x2122232425262728292a2b2c2d2e2f3031323334
K3=0x4142434445464748494a4b4c4d4e4f5051525354
K4=0x6162636465666768696a6b6c6d6e6f7071727374
ctl A setkey -c <<EOF
add 198.51.100.1 198.51.100.2 esp 0x1000 -m transport -u $A4O -E aes-gcm-16 $K1;
add 198.51.100.2 198.51.100.1 esp 0x1001 -m transport -u $A4I -E aes-gcm-16 $K2;
add 198.51.100.1 198.51.100.2 esp 0x2000 -m transport -u $A6O -E aes-gcm-16 $K3;
add 198.51.100.2 198.51.100.1 esp 0x2001 -m transport -u $A6I -E aes-gcm-16 $K4;
EOF
ctl B setkey -c <<EOF
add 198.51.100.1 198.51.100.2 esp 0x1000 -m transport -u $B4I -E aes-gcm-16 $K1;
add 198.51.100.2 198.51.100.1 esp 0x1001 -m transport -u $B4O -E aes-gcm-16 $K2;
add 198.51.100.1 198.51.100.2 esp 0x2000 -m transport -u $B6I -E aes-gcm-16 $K3;
add 198.51.100.2 198.51.100.1 esp 0x2001 -m transport -u $B6O -E aes-gcm-16 $K4;
EOF
# setkey is a PF_KEY client of the daemon's PF_KEY socket (A.pfkey next to A.sock).
grep -q 'PF_KEY: endpoint [0-9]* opened' "$WORK/A.log" || fail "setkey did not use PF_KEY"
ctl A setkey -D >"$WORK/sadA.txt"
grep -q "esp mode=transport spi=4096(0x00001000) reqid=$A4O" "$WORK/sadA.txt" || fail "setkey -D"
grep -q 'E: aes-gcm-16' "$WORK/sadA.txt" || fail "setkey -D algorithm"
if grep -q '0102030405060708' "$WORK/sadA.txt" "$WORK/A.log" "$WORK/B.log"; then
    fail "a key appeared in a listing or a log"
fi
ctl A setkey -DP >"$WORK/spdA.txt"
grep -q "esp/transport//unique:$A4O" "$WORK/spdA.txt" || fail "setkey -DP"

step "ping 192.0.2.2 from A"
in_ns "$NSA" ping -c 3 -W 2 -I 192.0.2.1 192.0.2.2 || fail "IPv4 ping through the tunnel"

step "ping 2001:db8:1::2 from A"
ok=0
# The first echo may race the kernel's own setup of the new IPv6 route.
for _ in 1 2 3; do
    if in_ns "$NSA" ping -6 -c 3 -W 2 2001:db8:1::2; then
        ok=1
        break
    fi
    sleep 1
done
[ "$ok" -eq 1 ] || fail "IPv6 ping through the tunnel"

step "counters"
ctl A stats >"$WORK/statsA.txt"
ctl B stats >"$WORK/statsB.txt"
cat "$WORK/statsA.txt"
# counter FILE TEXT -> value
counter() {
    awk -v t="$2" '{ n = $1; $1 = ""; sub(/^ /, ""); if ($0 == t) print n }' "$1"
}
for f in "$WORK/statsA.txt" "$WORK/statsB.txt"; do
    out=$(counter "$f" "outbound packets processed successfully")
    in=$(counter "$f" "inbound packets processed successfully")
    [ "${out:-0}" -ge 6 ] || fail "$(basename "$f"): outbound count ${out:-none} < 6"
    [ "${in:-0}" -ge 6 ] || fail "$(basename "$f"): inbound count ${in:-none} < 6"
done
auth=$(counter "$WORK/statsB.txt" "inbound packets failed on authentication")
[ "${auth:-x}" = 0 ] || fail "authentication failures on B: ${auth:-none}"
ctl A ifconfig ipsec0 | grepq 'input: [1-9][0-9]* packets' || fail "per-interface counters"

step "control errors"
if ctl A setkey -c >/dev/null 2>"$WORK/err.txt" <<EOF; then
spdflush;
spddelete 198.51.100.1 198.51.100.2 ipv4 -P out;
EOF
    fail "deleting an interface's policy succeeded"
fi
grep -q '^line 2: .*policy is owned by an interface' "$WORK/err.txt" || {
    cat "$WORK/err.txt"
    fail "error text for an owned policy"
}
if ctl A ifconfig ipsec7 up 2>/dev/null; then
    fail "ifconfig of a missing interface succeeded"
fi
ctl A sysctl net.inet.ipsec.def_policy | grepq '^net.inet.ipsec.def_policy = 1$' ||
    fail "sysctl read"
ctl A sysctl net.inet6.ipsec6.esp_trans_deflev=2 >/dev/null
ctl A sysctl -a | grepq '^net.inet6.ipsec6.esp_trans_deflev = 2$' || fail "sysctl write"

step "NAT-T (link0): ESP in UDP 4500"
ctl A setkey -F
ctl B setkey -F
ctl A ifconfig ipsec0 link0
ctl B ifconfig ipsec0 link0
ctl A ifconfig ipsec0 >"$WORK/ifA.txt"
ctl B ifconfig ipsec0 >"$WORK/ifB.txt"
grep -q 'tunnel inet 198.51.100.1\[4500\] --> 198.51.100.2\[4500\]' "$WORK/ifA.txt" ||
    fail "NAT-T tunnel line"
read -r A4O A4I A6O A6I <<<"$(unique_ids "$WORK/ifA.txt")"
read -r B4O B4I B6O B6I <<<"$(unique_ids "$WORK/ifB.txt")"
# 4500 is 0x1194 in /proc/net/udp.
udp4500() {
    in_ns "$1" cat /proc/net/udp | awk '$2 ~ /:1194$/ { n++ } END { print n + 0 }'
}
[ "$(udp4500 "$NSA")" -eq 1 ] || fail "no UDP socket on port 4500 in A"
ctl A setkey -c <<EOF
add 198.51.100.1[4500] 198.51.100.2[4500] esp-udp 0x3000 -m transport -u $A4O -E aes-gcm-16 $K1;
add 198.51.100.2[4500] 198.51.100.1[4500] esp-udp 0x3001 -m transport -u $A4I -E aes-gcm-16 $K2;
EOF
ctl B setkey -c <<EOF
add 198.51.100.1[4500] 198.51.100.2[4500] esp-udp 0x3000 -m transport -u $B4I -E aes-gcm-16 $K1;
add 198.51.100.2[4500] 198.51.100.1[4500] esp-udp 0x3001 -m transport -u $B4O -E aes-gcm-16 $K2;
EOF
ctl A setkey -D | grepq '^198.51.100.1\[4500\] 198.51.100.2\[4500\]$' || fail "NAT-T SA listing"
in_ns "$NSA" ping -c 2 -W 2 -I 192.0.2.1 192.0.2.2 || fail "IPv4 ping over ESP in UDP"
ctl A ifconfig ipsec0 -link0
[ "$(udp4500 "$NSA")" -eq 0 ] || fail "the UDP socket on port 4500 outlived link0"

step "nesting: the tunnel destination routed into ipsec0 itself"
ctl A setkey -F
ctl A ifconfig ipsec0 >"$WORK/ifA.txt"
read -r A4O A4I A6O A6I <<<"$(unique_ids "$WORK/ifA.txt")"
ctl A setkey -c <<EOF
add 198.51.100.1 198.51.100.2 esp 0x1000 -m transport -u $A4O -E aes-gcm-16 $K1;
EOF
ctl A sysctl net.ipsecif.max_nesting | grepq '^net.ipsecif.max_nesting = 1$' ||
    fail "max_nesting default"
ctl A stats >"$WORK/nest0.txt"
in_ns "$NSA" ip route add 198.51.100.2/32 dev ipsec0
# Each echo is encapsulated once; its ESP comes back through the TUN device
# and is refused instead of going round again. No reply can come.
if in_ns "$NSA" ping -c 3 -i 0.2 -W 1 -I 192.0.2.1 192.0.2.2 >/dev/null; then
    fail "a ping was answered over a looping tunnel"
fi
sleep 0.5
ctl A stats >"$WORK/nest1.txt"
sleep 1
ctl A stats >"$WORK/nest2.txt"
in_ns "$NSA" ip route del 198.51.100.2/32 dev ipsec0
OUT="outbound packets processed successfully"
NEST="outbound packets refused: ipsec interfaces nested too deep"
out1=$(($(counter "$WORK/nest1.txt" "$OUT") - $(counter "$WORK/nest0.txt" "$OUT")))
nest1=$(($(counter "$WORK/nest1.txt" "$NEST") - $(counter "$WORK/nest0.txt" "$NEST")))
out2=$(($(counter "$WORK/nest2.txt" "$OUT") - $(counter "$WORK/nest1.txt" "$OUT")))
echo "looping tunnel: $out1 sent, $nest1 refused; $out2 sent in the next second"
[ "$nest1" -ge 3 ] || fail "nesting refusals: $nest1 < 3"
# Without the limit each echo would go round thousands of times a second.
[ "$out1" -le $((nest1 + 5)) ] || fail "$out1 packets sent for $nest1 refused: the loop went on"
[ "$out2" -le 5 ] || fail "$out2 packets sent in a quiet second: the daemon spins"
grep -q 'ipsec0: recursively called too many times(2)' "$WORK/A.log" || fail "no nesting log line"
ctl A ifconfig ipsec0 | grepq 'drops: in [0-9]*, out [1-9]' || fail "per-interface drops"

step "SIGTERM: daemons exit 0, TUN devices stay (fail closed)"
kill -TERM "$PIDA" "$PIDB"
rc=0
wait "$PIDA" || rc=$?
[ "$rc" -eq 0 ] || fail "A exited $rc"
rc=0
wait "$PIDB" || rc=$?
[ "$rc" -eq 0 ] || fail "B exited $rc"
PIDA=
PIDB=
in_ns "$NSA" ip link show ipsec0 >/dev/null 2>&1 && in_ns "$NSB" ip link show ipsec0 >/dev/null 2>&1 ||
    fail "a TUN device went with its daemon"
[ ! -e "$WORK/A.sock" ] && [ ! -e "$WORK/A.pid" ] && [ ! -e "$WORK/A.pfkey" ] ||
    fail "socket or pid file left behind"
echo "PASS"
