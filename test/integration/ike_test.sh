#!/usr/bin/env bash
# PF_KEY against ipsecifd, as key-management programs use it:
# 1. pfkey_client, an unmodified-style PF_KEY program, under
#    libipsecif_pfkey_preload.so: REGISTER, ADD, GET, DUMP, DELETE, each
#    reply read without blocking right after the send.
# 2. An IKE daemon's work: two network namespaces joined by a veth pair,
#    ipsecifd in each with ipsec0 between them and no SAs; ike_test holds a
#    PF_KEY connection to each daemon (the sockets live in a shared
#    directory: UNIX sockets ignore network namespaces), registers for ESP,
#    a ping into ipsec0 raises an ACQUIRE, and it answers with GETSPI,
#    UPDATE and ADD on both ends. Then pings must pass. Once for IPv4 with A
#    initiating, once for IPv6 with B initiating.
#
# 3. racoon's IKE sockets under the preload library (sockpol_client):
#    setsockopt(IP_IPSEC_POLICY / IPV6_IPSEC_POLICY) recorded by the daemon
#    as per-socket policies and listed by `setkey -DP` while the sockets
#    live, gone when they close; malformed policies refused with EINVAL;
#    PF_KEY datagrams that are no whole message answered with EMSGSIZE.
#
# usage: ike_test.sh IPSECIFD IPSECIFCTL PRELOAD_SO PFKEY_CLIENT IKE_TEST SOCKPOL_CLIENT
# Needs root (exit 77, "skipped", otherwise).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")
PRELOAD=$(readlink -f "$3")
PFKEY_CLIENT=$(readlink -f "$4")
IKE_TEST=$(readlink -f "$5")
SOCKPOL_CLIENT=$(readlink -f "$6")

NETNS_TAG=ike
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
ip netns exec "$NSA" "$IPSECIFD" -f -l debug -s "$WORK/A.sock" -k "$WORK/A.pfkey" \
    -p "$WORK/A.pid" </dev/null >"$WORK/A.log" 2>&1 &
PIDA=$!
ip netns exec "$NSB" "$IPSECIFD" -f -l debug -s "$WORK/B.sock" -k "$WORK/B.pfkey" \
    -p "$WORK/B.pid" </dev/null >"$WORK/B.log" 2>&1 &
PIDB=$!
for _ in $(seq 50); do
    if [ -S "$WORK/A.pfkey" ] && [ -S "$WORK/B.pfkey" ]; then
        break
    fi
    sleep 0.1
done
[ -S "$WORK/A.pfkey" ] && [ -S "$WORK/B.pfkey" ] || fail "PF_KEY sockets did not appear"

step "a PF_KEY program under the preload library"
LD_PRELOAD="$PRELOAD" IPSECIF_PFKEY_SOCKET="$WORK/A.pfkey" "$PFKEY_CLIENT" ||
    fail "pfkey_client"

step "ipsec0 on both sides, no SAs"
ctl A ifconfig ipsec0 create tunnel 198.51.100.1 198.51.100.2 inet 192.0.2.1/32 192.0.2.2 \
    inet6 2001:db8:1::1/64 up
ctl B ifconfig ipsec0 create tunnel 198.51.100.2 198.51.100.1 inet 192.0.2.2/32 192.0.2.1 \
    inet6 2001:db8:1::2/64 up
if in_ns "$NSA" ping -c 1 -W 1 -I 192.0.2.1 192.0.2.2 >/dev/null 2>&1; then
    fail "a ping passed without SAs"
fi
# The library raises one ACQUIRE per policy a second at most: let that second pass.
sleep 1.5

step "IPv4: ACQUIRE on A, SAs from the PF_KEY exchange"
"$IKE_TEST" "$WORK/A.pfkey" 198.51.100.1 "$WORK/B.pfkey" 198.51.100.2 4 -- \
    ip netns exec "$NSA" ping -c 1 -W 1 -I 192.0.2.1 192.0.2.2 || fail "IKE exchange (IPv4)"
in_ns "$NSA" ping -c 3 -W 2 -I 192.0.2.1 192.0.2.2 || fail "IPv4 ping after the exchange"
ctl A setkey -D | grepq 'esp mode=transport' || fail "no SA listed on A"

step "IPv6: ACQUIRE on B, SAs from the PF_KEY exchange"
"$IKE_TEST" "$WORK/B.pfkey" 198.51.100.2 "$WORK/A.pfkey" 198.51.100.1 41 -- \
    ip netns exec "$NSB" ping -6 -c 1 -W 1 2001:db8:1::1 || fail "IKE exchange (IPv6)"
ok=0
for _ in 1 2 3; do
    if in_ns "$NSB" ping -6 -c 3 -W 2 2001:db8:1::1; then
        ok=1
        break
    fi
    sleep 1
done
[ "$ok" -eq 1 ] || fail "IPv6 ping after the exchange"

step "racoon's IKE sockets: per-socket policies through the preload library"
# Called by sockpol_client with "held" while its sockets are open, "closed" after.
cat >"$WORK/sockpol_check.sh" <<EOF
#!/usr/bin/env bash
set -eu
# Shown with the daemons' logs if the test fails.
exec 2>"$WORK/sockpol_check.\$1.log"
set -x
"$IPSECIFCTL" -s "$WORK/A.sock" setkey -DP >"$WORK/sockpol.\$1"
if [ "\$1" = held ]; then
    # Linux lists per-socket policies in X_SPDDUMP; setkey prints them so.
    grep -A1 '^(per-socket policy) 0.0.0.0/0\[any\] 198.51.100.1/32\[500\] udp' \
        "$WORK/sockpol.\$1" | grep -q 'in .*none'
    grep -A1 '^(per-socket policy) 198.51.100.1/32\[500\] 0.0.0.0/0\[any\] udp' \
        "$WORK/sockpol.\$1" | grep -q 'out .*none'
    grep -A2 '^(per-socket policy) ::/0\[500\] ::/0\[any\] udp' "$WORK/sockpol.\$1" |
        grep -q 'esp/transport//require'
    [ "\$(grep -c '^(per-socket policy)' "$WORK/sockpol.\$1")" -eq 3 ]
else
    ! grep -q '^(per-socket policy)' "$WORK/sockpol.\$1"
fi
EOF
chmod +x "$WORK/sockpol_check.sh"
ip netns exec "$NSA" env LD_PRELOAD="$PRELOAD" IPSECIF_PFKEY_SOCKET="$WORK/A.pfkey" \
    "$SOCKPOL_CLIENT" "$WORK/A.pfkey" 198.51.100.1 198.51.100.2 -- "$WORK/sockpol_check.sh" ||
    fail "per-socket policies"
grep -q "refused (EMSGSIZE)" "$WORK/A.log" || fail "the daemon did not log the refused datagrams"

step "PF_KEY endpoints closed with their connections"
grep -q 'PF_KEY: endpoint [0-9]* closed' "$WORK/A.log" || fail "no endpoint closed on A"
echo "PASS"
