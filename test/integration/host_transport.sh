#!/usr/bin/env bash
# Host traffic through ipsecifd -H (ipsec(4) on the namespace's own and
# forwarded packets).
#
# Part 1, two hosts A and B joined by a veth pair (198.51.100.0/24,
# 2001:db8:ff::/64), each running `ipsecifd -H`, SAs and policies by
# `ipsecifctl setkey -c`. For each of ESP transport with AES-GCM, ESP
# transport with AES-CBC + HMAC-SHA-256, AH transport with HMAC-SHA-256 and
# the bundle esp+ah, IPv4 and IPv6: pings and a TCP transfer (checked by
# hash) pass, and a capture on the veth holds the protocol asked for and
# not one cleartext packet between the two addresses (neighbour discovery
# aside). Then:
#   - a require policy without SAs: pings fail, out_nosa and the ACQUIRE
#     counter grow, the daemon logs the ACQUIRE and a PF_KEY listener
#     registered for ESP receives it, nothing leaves in clear;
#   - cleartext from A (no policies) to B with an inbound require policy:
#     dropped by B's table inet ipsecif_host (its policy rules count it, B's
#     stack sees no echo request); control: without the policy it passes;
#   - kill -9 of A's daemon in the middle of ping floods: no cleartext, the
#     device and the rules stay and drop; a new daemon takes them over;
#     SIGTERM keeps them, -x removes them all; control: after -x the same
#     pings leave in clear and the capture check counts them.
# Part 2, tunnel mode for forwarded traffic: hostA - gwA == gwB - hostB,
# the gateways run `ipsecifd -H` with esp/tunnel policies for the subnets
# (192.0.2.0/24 <-> 203.0.113.0/24 over IPv4, 2001:db8:a::/64 <->
# 2001:db8:b::/64 over IPv6). hostA pings hostB and sends it a TCP stream;
# between the gateways the capture holds ESP only. kill -9 of gwA's daemon
# during ping floods leaks nothing; control: with host mode removed (-x),
# gwA's own routes carry the same pings in clear and the check sees them.
#
# usage: host_transport.sh IPSECIFD IPSECIFCTL
# Needs root, network namespaces, tcpdump, nft and python3 (exit 77,
# "skipped", otherwise).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")

NETNS_TAG=host
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

# shellcheck source=host_lib.sh
. "$(dirname "$0")/host_lib.sh"
host_prereqs tcpdump nft

NSHA=$ID-ha
NSHB=$ID-hb
HOST_EXTRA_NS="$NSHA $NSHB"

KC1=0x00112233445566778899aabbccddeeff
KC2=0x0f1e2d3c4b5a69788796a5b4c3d2e1f0

# ---- Helpers ----

# stop_daemon PID: SIGTERM, exit status 0.
stop_daemon() {
    local rc=0
    kill -TERM "$1"
    wait "$1" || rc=$?
    [ "$rc" -eq 0 ] || fail "daemon exited $rc on SIGTERM"
}

# The TCP transfer: a server that prints the length and SHA-256 of what it
# received, a client that sends a file.
cat >"$WORK/xfer.py" <<'EOF'
import hashlib
import os
import socket
import sys

mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
if mode == "server":
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    open(sys.argv[4] + ".ready", "w").close()
    s.settimeout(30)
    c, _ = s.accept()
    c.settimeout(30)
    h = hashlib.sha256()
    n = 0
    while True:
        b = c.recv(65536)
        if not b:
            break
        h.update(b)
        n += len(b)
    with open(sys.argv[4], "w") as f:
        f.write("%d %s\n" % (n, h.hexdigest()))
else:
    data = open(sys.argv[4], "rb").read()
    c = socket.create_connection((addr, port), timeout=30)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    c.close()
EOF
head -c 1048576 /dev/urandom >"$WORK/data"
DATA_SUM="1048576 $(sha256sum "$WORK/data" | cut -d' ' -f1)"
XFER_PORT=5000

# xfer SERVER_NS ADDR CLIENT_NS: 1 MiB over TCP, checked by its hash.
xfer() {
    local sns=$1 addr=$2 cns=$3 out spid
    XFER_PORT=$((XFER_PORT + 1))
    out=$WORK/xfer.$XFER_PORT
    in_ns "$sns" "$PY" "$WORK/xfer.py" server "$addr" "$XFER_PORT" "$out" &
    spid=$!
    BG="$BG $spid"
    for _ in $(seq 50); do
        [ -e "$out.ready" ] && break
        sleep 0.1
    done
    in_ns "$cns" timeout 40 "$PY" "$WORK/xfer.py" client "$addr" "$XFER_PORT" "$WORK/data" ||
        fail "TCP transfer to $addr"
    wait "$spid" || fail "TCP server at $addr"
    [ "$(cat "$out")" = "$DATA_SUM" ] || fail "TCP transfer to $addr: got $(cat "$out")"
}

# ---- Part 1: host transport mode between A and B ----

step "namespaces $NSA and $NSB, veth on 198.51.100.0/24 and 2001:db8:ff::/64"
veth_pair

step "ipsecifd -H on both: ipsech0, rules, table 0x4950, nftables table"
start_daemon A "$NSA"
start_daemon B "$NSB"
for ns in "$NSA" "$NSB"; do
    in_ns "$ns" ip link show ipsech0 | grepq 'mtu 1400' || fail "no ipsech0 with MTU 1400"
    in_ns "$ns" ip rule | grepq '^103:.*lookup 18768' || fail "no IPv4 rule into the host table"
    in_ns "$ns" ip -6 rule | grepq '^103:.*lookup 18768' || fail "no IPv6 rule into the host table"
    in_ns "$ns" ip rule | grepq '^101:.*fwmark 0x4950 lookup main' || fail "no fwmark rule"
    in_ns "$ns" ip route show table 0x4950 | grepq '^blackhole default' || fail "no blackhole route"
    in_ns "$ns" nft list table inet ipsecif_host >/dev/null || fail "no table inet ipsecif_host"
done
# No policies yet: host traffic goes through the daemon, in clear.
pings "$NSA" "$B4" "$B6"
[ "$(stat_of A "host packets sent in clear by policy")" -ge 6 ] || fail "pings did not pass the daemon"

# sas_esp_gcm / sas_esp_cbc / sas_ah: the same SAs for both sides.
sas_esp_gcm() {
    cat <<EOF
add $A4 $B4 esp 0x1001 -m transport -E aes-gcm-16 $KG1;
add $B4 $A4 esp 0x1002 -m transport -E aes-gcm-16 $KG2;
add $A6 $B6 esp 0x1003 -m transport -E aes-gcm-16 $KG3;
add $B6 $A6 esp 0x1004 -m transport -E aes-gcm-16 $KG4;
EOF
}
sas_esp_cbc() {
    cat <<EOF
add $A4 $B4 esp 0x2001 -m transport -E aes-cbc $KC1 -A hmac-sha256 $KH1;
add $B4 $A4 esp 0x2002 -m transport -E aes-cbc $KC2 -A hmac-sha256 $KH2;
add $A6 $B6 esp 0x2003 -m transport -E aes-cbc $KC1 -A hmac-sha256 $KH3;
add $B6 $A6 esp 0x2004 -m transport -E aes-cbc $KC2 -A hmac-sha256 $KH4;
EOF
}
sas_ah() {
    cat <<EOF
add $A4 $B4 ah 0x3001 -m transport -A hmac-sha256 $KH1;
add $B4 $A4 ah 0x3002 -m transport -A hmac-sha256 $KH2;
add $A6 $B6 ah 0x3003 -m transport -A hmac-sha256 $KH3;
add $B6 $A6 ah 0x3004 -m transport -A hmac-sha256 $KH4;
EOF
}

# policies SIDE REQUESTS [DIRS]: host-to-host policies for both families
# (DIRS: "out in" by default).
policies() {
    local side=$1 req=$2 dirs=${3:-out in} me4=$A4 peer4=$B4 me6=$A6 peer6=$B6 dir
    if [ "$side" = B ]; then
        me4=$B4 peer4=$A4 me6=$B6 peer6=$A6
    fi
    for dir in $dirs; do
        if [ "$dir" = out ]; then
            echo "spdadd $me4 $peer4 any -P out ipsec $req;"
            echo "spdadd $me6 $peer6 any -P out ipsec $req;"
        else
            echo "spdadd $peer4 $me4 any -P in ipsec $req;"
            echo "spdadd $peer6 $me6 any -P in ipsec $req;"
        fi
    done
}

flush_all() {
    local side
    for side in "$@"; do
        ctl "$side" setkey -F
        ctl "$side" setkey -FP
    done
}

# phase NAME PROTECTED_FILTER SAS REQUESTS: configure both sides, pings and
# TCP in both families, the capture holds the protocol and no cleartext.
phase() {
    local name=$1 filter=$2 sas=$3 req=$4 side n o0 i0
    step "$name: pings and TCP, IPv4 and IPv6"
    flush_all A B
    for side in A B; do
        { $sas; policies "$side" "$req"; } | ctl "$side" setkey -c
    done
    o0=$(stat_of A "host packets sent with IPsec")
    i0=$(stat_of A "host packets received with IPsec and allowed")
    capture_start "$name" "$NSA" veth-a
    pings "$NSA" "$B4" "$B6"
    pings "$NSB" "$A4" "$A6"
    xfer "$NSB" "$B4" "$NSA"
    xfer "$NSA" "$A6" "$NSB"
    capture_stop
    n=$(count "$filter")
    echo "$name: $n packets of '$filter' on the link, $(count "$LEAK") in clear;" \
        "A sent $(($(stat_of A "host packets sent with IPsec") - o0)) and took in" \
        "$(($(stat_of A "host packets received with IPsec and allowed") - i0)) with IPsec"
    # 1 MiB each way is more than 700 segments; pings add 24.
    [ "$n" -ge 1000 ] || fail "$name: only $n protected packets on the link"
    no_leak "$name"
    [ $(($(stat_of A "host packets sent with IPsec") - o0)) -ge 500 ] || fail "$name: A sent little with IPsec"
    [ $(($(stat_of A "host packets received with IPsec and allowed") - i0)) -ge 500 ] ||
        fail "$name: A took in little with IPsec"
}

step "a second ipsecifd -H -x in A is refused and leaves the first one's device, rules and table"
{ sas_esp_gcm; policies A "esp/transport//require" in; } | ctl A setkey -c
rc=0
timeout 10 ip netns exec "$NSA" "$IPSECIFD" -f -H -x -s "$WORK/A2.sock" -p "$WORK/A2.pid" \
    </dev/null >"$WORK/A2.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "the second daemon exited $rc"
grepq 'ipsech0: in use by another process' "$WORK/A2.log" || fail "no EBUSY in the second daemon's log"
in_ns "$NSA" ip rule | grepq '^103:.*lookup 18768' || fail "the second daemon removed the rules"
in_ns "$NSA" nft list chain inet ipsecif_host prerouting | grepq 'comment "policy in' ||
    fail "the second daemon replaced the table"
ctl A setkey -FP
ctl A setkey -F

phase esp-gcm "esp" sas_esp_gcm "esp/transport//require"
phase esp-cbc-sha256 "esp" sas_esp_cbc "esp/transport//require"
phase ah-sha256 "ah" sas_ah "ah/transport//require"
sas_bundle() {
    sas_esp_gcm
    sas_ah
}
# The first request innermost: IP | AH | ESP | payload.
phase bundle "(ip proto 51 and ip[20] = 50) or (ip6 proto 51 and ip6[40] = 50)" sas_bundle \
    "esp/transport//require ah/transport//require"

step "require without an SA: dropped, counted, ACQUIRE raised, nothing in clear"
ctl A setkey -F
ctl B setkey -F
# A key-management listener on A's PF_KEY socket: REGISTER for ESP, then
# the destination of every ACQUIRE it receives, one per line.
cat >"$WORK/km.py" <<'EOF'
import socket
import struct
import sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.settimeout(15)
s.send(struct.pack("=BBBBHHII", 2, 7, 0, 3, 2, 0, 1, 0))  # SADB_REGISTER, ESP
out = open(sys.argv[2], "w")
out.write("registered\n")
out.flush()
try:
    while True:
        m = s.recv(65536)
        if len(m) < 16 or m[1] != 6:  # SADB_ACQUIRE
            continue
        off = 16
        while off + 4 <= len(m):
            elen, etype = struct.unpack_from("=HH", m, off)
            if elen == 0:
                break
            if etype == 6:  # SADB_EXT_ADDRESS_DST: sadb_address, then a sockaddr
                fam = struct.unpack_from("=H", m, off + 8)[0]
                if fam == socket.AF_INET:
                    out.write(socket.inet_ntop(fam, m[off + 12:off + 16]) + "\n")
                elif fam == socket.AF_INET6:
                    out.write(socket.inet_ntop(fam, m[off + 16:off + 32]) + "\n")
                out.flush()
            off += elen * 8
except socket.timeout:
    pass
EOF
: >"$WORK/acquires.txt"
"$PY" "$WORK/km.py" "$WORK/A.pfkey" "$WORK/acquires.txt" &
KMPID=$!
BG="$BG $KMPID"
for _ in $(seq 50); do
    grepq registered "$WORK/acquires.txt" && break
    sleep 0.1
done
grepq registered "$WORK/acquires.txt" || fail "the PF_KEY listener did not register"
nosa0=$(stat_of A "outbound packets with no SA available")
acq0=$(stat_of A "ACQUIRE events raised")
seen=$(wc -l <"$WORK/A.log")
capture_start nosa "$NSA" veth-a
in_ns "$NSA" ping -c 3 -i 0.2 -W 1 "$B4" >/dev/null 2>&1 && fail "IPv4 ping passed without an SA"
in_ns "$NSA" ping -6 -c 3 -i 0.2 -W 1 "$B6" >/dev/null 2>&1 && fail "IPv6 ping passed without an SA"
capture_stop
nosa=$(($(stat_of A "outbound packets with no SA available") - nosa0))
acq=$(($(stat_of A "ACQUIRE events raised") - acq0))
echo "no SA: out_nosa +$nosa, ACQUIRE +$acq, $(count "ip or ip6") IP packets on the link"
[ "$nosa" -ge 6 ] || fail "out_nosa grew by $nosa only"
[ "$acq" -ge 2 ] || fail "ACQUIRE raised $acq times"
tail -n +$((seen + 1)) "$WORK/A.log" | grepq "ACQUIRE: policy [0-9]* wants an SA $A4 -> $B4" ||
    fail "no IPv4 ACQUIRE in A's log"
tail -n +$((seen + 1)) "$WORK/A.log" | grepq "ACQUIRE: policy [0-9]* wants an SA $A6 -> $B6" ||
    fail "no IPv6 ACQUIRE in A's log"
no_leak "no SA"
[ "$(count "esp or ah")" -eq 0 ] || fail "IPsec on the link without an SA"
sleep 0.3
kill "$KMPID" 2>/dev/null || true
wait "$KMPID" 2>/dev/null || true
echo "PF_KEY listener: ACQUIREs for $(grep -v registered "$WORK/acquires.txt" | sort -u | tr '\n' ' ')"
grepq -x "$B4" "$WORK/acquires.txt" || fail "no PF_KEY ACQUIRE for $B4"
grepq -x "$B6" "$WORK/acquires.txt" || fail "no PF_KEY ACQUIRE for $B6"

# Echo requests B's kernel took in; packets B's table dropped by policy.
in_echos4() {
    in_ns "$NSB" awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 }
        else print $(c["InEchos"]) }' /proc/net/snmp
}
in_echos6() {
    in_ns "$NSB" awk '$1 == "Icmp6InEchos" { print $2 }' /proc/net/snmp6
}
nft_policy_in() {
    in_ns "$NSB" nft list chain inet ipsecif_host prerouting |
        awk 'index($0, "comment \"policy in") && index($0, "drop") {
            for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'
}

step "cleartext to B: passes without policies (control), dropped by B's table with in require"
flush_all A B
e4=$(in_echos4)
e6=$(in_echos6)
pings "$NSA" "$B4" "$B6"
if [ $(($(in_echos4) - e4)) -lt 3 ] || [ $(($(in_echos6) - e6)) -lt 3 ]; then
    fail "control: B's stack did not see the cleartext pings"
fi
policies B "esp/transport//require" in | ctl B setkey -c
in_ns "$NSB" nft list chain inet ipsecif_host prerouting | grepq "ip saddr $A4 ip daddr $B4 counter packets 0 bytes 0 drop" ||
    fail "B's table has no drop rule for the IPv4 in policy"
e4=$(in_echos4)
e6=$(in_echos6)
d0=$(nft_policy_in)
clr0=$(stat_of B "host packets received in clear and allowed")
in_ns "$NSA" ping -c 3 -i 0.2 -W 1 "$B4" >/dev/null 2>&1 && fail "cleartext IPv4 ping answered"
in_ns "$NSA" ping -6 -c 3 -i 0.2 -W 1 "$B6" >/dev/null 2>&1 && fail "cleartext IPv6 ping answered"
d=$(($(nft_policy_in) - d0))
echo "B's table dropped $d packets by policy; B's stack saw $(($(in_echos4) - e4)) + $(($(in_echos6) - e6)) echo requests"
[ "$d" -ge 6 ] || fail "B's table dropped only $d packets"
[ "$(in_echos4)" -eq "$e4" ] || fail "B's stack took in cleartext IPv4 echo requests"
[ "$(in_echos6)" -eq "$e6" ] || fail "B's stack took in cleartext IPv6 echo requests"
[ "$(stat_of B "host packets received in clear and allowed")" -eq "$clr0" ] ||
    fail "cleartext reached B's library"

step "kill -9 of A's daemon during ping floods: nothing in clear"
flush_all A B
for side in A B; do
    { sas_esp_gcm; policies "$side" "esp/transport//require"; } | ctl "$side" setkey -c
done
npol=$(ctl A setkey -DP | grep -c 'spid=')
pings "$NSA" "$B4" "$B6"
tx_dropped() {
    in_ns "$NSA" cat /sys/class/net/ipsech0/statistics/tx_dropped
}
drop0=$(tx_dropped)
capture_start kill "$NSA" veth-a
in_ns "$NSA" ping -q -f -w 4 "$B4" >"$WORK/f4.txt" 2>&1 &
f4=$!
in_ns "$NSA" ping -6 -q -f -w 4 "$B6" >"$WORK/f6.txt" 2>&1 &
f6=$!
BG="$BG $f4 $f6"
sleep 1.5
kill -KILL "$PIDA"
wait "$PIDA" 2>/dev/null || true
PIDA=
wait "$f4" || true
wait "$f6" || true
capture_stop
esp=$(count esp)
echo "kill -9: $esp ESP packets, $(count "$LEAK") in clear; ipsech0 dropped $(($(tx_dropped) - drop0))"
[ "$esp" -ge 100 ] || fail "only $esp ESP packets before the kill: the floods did not run"
no_leak "after kill -9"
[ $(($(tx_dropped) - drop0)) -ge 50 ] || fail "ipsech0 did not drop the floods after the kill"
in_ns "$NSA" ip rule | grepq '^103:.*lookup 18768' || fail "the rules went with the daemon"

step "a new daemon takes ipsech0 over; SIGTERM keeps it all, -x removes it"
seen=$(wc -l <"$WORK/A.log")
start_daemon A "$NSA"
tail -n +$((seen + 1)) "$WORK/A.log" | grepq 'host: ipsech0 taken over' || fail "no take-over in A's log"
# The policies came back from the state file (host_restart.sh tests that
# in depth); the SAs did not. Fresh SAs on both sides: a new replay window
# for the new daemon's counters.
[ "$(ctl A setkey -DP | grep -c 'spid=')" -eq "$npol" ] || fail "the new daemon did not restore A's policies"
flush_all B
sas_esp_gcm | ctl A setkey -c
{ sas_esp_gcm; policies B "esp/transport//require"; } | ctl B setkey -c
pings "$NSA" "$B4" "$B6"
stop_daemon "$PIDA"
PIDA=
in_ns "$NSA" ip link show ipsech0 >/dev/null 2>&1 || fail "ipsech0 went with SIGTERM"
in_ns "$NSA" ip -6 rule | grepq '^103:.*lookup 18768' || fail "the IPv6 rules went with SIGTERM"
in_ns "$NSA" nft list table inet ipsecif_host >/dev/null 2>&1 || fail "the table went with SIGTERM"
in_ns "$NSA" ping -c 2 -i 0.2 -W 1 "$B4" >/dev/null 2>&1 && fail "a ping passed with no daemon"
start_daemon A "$NSA" -x
stop_daemon "$PIDA"
PIDA=
in_ns "$NSA" ip link show ipsech0 >/dev/null 2>&1 && fail "ipsech0 outlived -x"
in_ns "$NSA" ip rule | grepq -E 'lookup 18768|0x4950' && fail "IPv4 rules outlived -x"
in_ns "$NSA" ip -6 rule | grepq -E 'lookup 18768|0x4950' && fail "IPv6 rules outlived -x"
[ -z "$(in_ns "$NSA" ip route show table 0x4950 2>/dev/null)" ] || fail "routes outlived -x"
in_ns "$NSA" nft list table inet ipsecif_host >/dev/null 2>&1 && fail "the table outlived -x"

step "control: with host mode gone, the same pings leave in clear and the check sees them"
capture_start control "$NSA" veth-a
in_ns "$NSA" ping -c 3 -i 0.2 -W 1 "$B4" >/dev/null 2>&1 || true
in_ns "$NSA" ping -6 -c 3 -i 0.2 -W 1 "$B6" >/dev/null 2>&1 || true
capture_stop
leak=$(count "$LEAK")
echo "control capture: $leak cleartext packets"
[ "$leak" -ge 6 ] || fail "the capture check missed cleartext pings ($leak)"
stop "$PIDB"
PIDB=
ip netns del "$NSA"
ip netns del "$NSB"

# ---- Part 2: tunnel mode for forwarded traffic ----

step "hostA - gwA == gwB - hostB; the gateways forward and run ipsecifd -H"
NSGA=$NSA
NSGB=$NSB
for ns in "$NSHA" "$NSGA" "$NSGB" "$NSHB"; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
done
ip link add ha0 netns "$NSHA" type veth peer name ga0 netns "$NSGA"
ip link add ga1 netns "$NSGA" type veth peer name gb1 netns "$NSGB"
ip link add gb0 netns "$NSGB" type veth peer name hb0 netns "$NSHB"
addr() {
    in_ns "$1" ip addr add "$3" dev "$2"
    in_ns "$1" ip addr add "$4" dev "$2" nodad
    in_ns "$1" ip link set "$2" up
}
addr "$NSHA" ha0 192.0.2.10/24 2001:db8:a::10/64
addr "$NSGA" ga0 192.0.2.1/24 2001:db8:a::1/64
addr "$NSGA" ga1 "$A4/24" "$A6/64"
addr "$NSGB" gb1 "$B4/24" "$B6/64"
addr "$NSGB" gb0 203.0.113.1/24 2001:db8:b::1/64
addr "$NSHB" hb0 203.0.113.10/24 2001:db8:b::10/64
in_ns "$NSHA" ip route add default via 192.0.2.1
in_ns "$NSHA" ip -6 route add default via 2001:db8:a::1
in_ns "$NSHB" ip route add default via 203.0.113.1
in_ns "$NSHB" ip -6 route add default via 2001:db8:b::1
# The gateways' own routes would carry the subnets in clear: what host
# mode must keep from happening.
in_ns "$NSGA" ip route add 203.0.113.0/24 via "$B4"
in_ns "$NSGA" ip -6 route add 2001:db8:b::/64 via "$B6"
in_ns "$NSGB" ip route add 192.0.2.0/24 via "$A4"
in_ns "$NSGB" ip -6 route add 2001:db8:a::/64 via "$A6"
for ns in "$NSGA" "$NSGB"; do
    in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1
done
TLEAK="host 192.0.2.10 or host 203.0.113.10 or host 2001:db8:a::10 or host 2001:db8:b::10"

# tunnel_conf SIDE: SAs and esp/tunnel policies of that gateway.
tunnel_conf() {
    local side=$1 me4=$A4 peer4=$B4 me6=$A6 peer6=$B6
    local l4=192.0.2.0/24 r4=203.0.113.0/24 l6=2001:db8:a::/64 r6=2001:db8:b::/64
    if [ "$side" = GB ]; then
        me4=$B4 peer4=$A4 me6=$B6 peer6=$A6
        l4=203.0.113.0/24 r4=192.0.2.0/24 l6=2001:db8:b::/64 r6=2001:db8:a::/64
    fi
    ctl "$side" setkey -c <<EOF
add $A4 $B4 esp 0x4001 -m tunnel -E aes-gcm-16 $KG1;
add $B4 $A4 esp 0x4002 -m tunnel -E aes-gcm-16 $KG2;
add $A6 $B6 esp 0x4003 -m tunnel -E aes-cbc $KC1 -A hmac-sha256 $KH3;
add $B6 $A6 esp 0x4004 -m tunnel -E aes-cbc $KC2 -A hmac-sha256 $KH4;
spdadd $l4 $r4 any -P out ipsec esp/tunnel/$me4-$peer4/require;
spdadd $r4 $l4 any -P in ipsec esp/tunnel/$peer4-$me4/require;
spdadd $l6 $r6 any -P out ipsec esp/tunnel/$me6-$peer6/require;
spdadd $r6 $l6 any -P in ipsec esp/tunnel/$peer6-$me6/require;
EOF
}

start_daemon GA "$NSGA"
start_daemon GB "$NSGB"
tunnel_conf GA
tunnel_conf GB

step "tunnel mode: hostA pings hostB and sends it TCP; ESP only between the gateways"
capture_start tunnel "$NSGA" ga1
ok=0
for _ in 1 2 3; do
    if in_ns "$NSHA" ping -c 3 -i 0.2 -W 2 203.0.113.10 >/dev/null &&
        in_ns "$NSHA" ping -6 -c 3 -i 0.2 -W 2 2001:db8:b::10 >/dev/null; then
        ok=1
        break
    fi
    sleep 1
done
[ "$ok" -eq 1 ] || fail "hostA's pings to hostB through the tunnel"
pings "$NSHB" 192.0.2.10 2001:db8:a::10
xfer "$NSHB" 203.0.113.10 "$NSHA"
xfer "$NSHB" 2001:db8:b::10 "$NSHA"
capture_stop
esp=$(count esp)
leak=$(count "$TLEAK")
echo "tunnel: $esp ESP packets between the gateways, $leak with a host's address"
[ "$esp" -ge 1000 ] || fail "only $esp ESP packets between the gateways"
if [ "$leak" -ne 0 ]; then
    tcpdump -r "$CAP" -n -c 5 "$TLEAK" 2>/dev/null || true
    fail "$leak cleartext packets between the gateways"
fi
[ "$(count "ip6 and esp")" -ge 500 ] || fail "no IPv6 tunnel (6in6) traffic"

step "kill -9 of gwA's daemon during ping floods from hostA: nothing in clear"
capture_start tunnel-kill "$NSGA" ga1
in_ns "$NSHA" ping -q -f -w 4 203.0.113.10 >"$WORK/t4.txt" 2>&1 &
f4=$!
in_ns "$NSHA" ping -6 -q -f -w 4 2001:db8:b::10 >"$WORK/t6.txt" 2>&1 &
f6=$!
BG="$BG $f4 $f6"
sleep 1.5
kill -KILL "$PIDA"
wait "$PIDA" 2>/dev/null || true
PIDA=
wait "$f4" || true
wait "$f6" || true
capture_stop
esp=$(count esp)
leak=$(count "$TLEAK")
echo "tunnel, kill -9: $esp ESP packets, $leak with a host's address"
[ "$esp" -ge 100 ] || fail "only $esp ESP packets before the kill"
[ "$leak" -eq 0 ] || fail "$leak cleartext packets between the gateways after kill -9"

step "control: gwA's host mode removed (-x), the same pings go out in clear and are seen"
start_daemon GA "$NSGA" -x
stop_daemon "$PIDA"
PIDA=
capture_start tunnel-control "$NSGA" ga1
in_ns "$NSHA" ping -c 3 -i 0.2 -W 1 203.0.113.10 >/dev/null 2>&1 || true
in_ns "$NSHA" ping -6 -c 3 -i 0.2 -W 1 2001:db8:b::10 >/dev/null 2>&1 || true
capture_stop
leak=$(count "$TLEAK")
echo "tunnel control: $leak cleartext packets between the gateways"
[ "$leak" -ge 6 ] || fail "the capture check missed cleartext pings ($leak)"
echo "PASS"
