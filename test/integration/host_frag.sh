#!/usr/bin/env bash
# Host packets larger than ipsech0's MTU through ipsecifd -H (IPsec before
# fragmentation, then the protected packet cut for the path).
#
# Two hosts A and B joined by a veth pair with MTU 1400 (198.51.100.0/24,
# 2001:db8:ff::/64), each running `ipsecifd -H`, ESP transport (AES-GCM)
# and then AH transport (HMAC-SHA-256) SAs and require policies for all
# traffic between them. For each:
#   - ping -s 3000 (and 8000), IPv4 and IPv6, both ways: the kernel cuts
#     the echo at ipsech0, the daemon puts it together, protects it and
#     cuts the result for the 1400-byte link; replies come back;
#   - an 8000-byte UDP datagram with DF clear (IPv4) and over IPv6 arrives
#     intact (length and SHA-256);
#   - a 1400-byte ping with DF set (IPv4) is too big once protected: the
#     daemon writes an ICMP "fragmentation needed" back to the host, ping
#     reports it, the kernel's path MTU to B drops below 1400;
#   - 1 MiB over TCP in both families (checked by hash);
#   - a capture on the link holds ESP (or AH) fragments and not one
#     cleartext ICMP, UDP or TCP packet between the two addresses;
#   - the daemon's stats count the reassembled datagrams, the fragments
#     it sent and the ICMP error.
#
# usage: host_frag.sh IPSECIFD IPSECIFCTL
# Needs root, network namespaces, tcpdump, nft and python3 (exit 77,
# "skipped", otherwise).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")

NETNS_TAG=hfrag
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

# shellcheck source=host_lib.sh
. "$(dirname "$0")/host_lib.sh"
host_prereqs tcpdump nft

LINK_MTU=1400

# bigping NS ADDR SIZE: 3 echoes of SIZE bytes, fragments allowed, all answered.
bigping() {
    in_ns "$1" ping -c 3 -i 0.2 -W 3 -M dont -s "$3" "$2" >"$WORK/ping.out" 2>&1 ||
        { cat "$WORK/ping.out"; fail "ping -s $3 $2 from $1"; }
    grepq ' 0% packet loss' "$WORK/ping.out" || fail "ping -s $3 $2 from $1: loss"
}

cat >"$WORK/udp.py" <<'EOF'
import hashlib
import socket
import sys

mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
if mode == "server":
    s.bind((addr, port))
    open(sys.argv[4] + ".ready", "w").close()
    s.settimeout(15)
    b = s.recv(70000)
    with open(sys.argv[4], "w") as f:
        f.write("%d %s\n" % (len(b), hashlib.sha256(b).hexdigest()))
else:
    if fam == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER: IP_PMTUDISC_DONT
    data = open(sys.argv[4], "rb").read()
    s.sendto(data, (addr, port))
EOF
head -c 8000 /dev/urandom >"$WORK/dgram"
DGRAM_SUM="8000 $(sha256sum "$WORK/dgram" | cut -d' ' -f1)"

cat >"$WORK/xfer.py" <<'EOF'
import hashlib
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
PORT=6000

# wait_ready FILE
wait_ready() {
    for _ in $(seq 50); do
        [ -e "$1.ready" ] && return 0
        sleep 0.1
    done
    fail "server did not start"
}

# udp SERVER_NS ADDR CLIENT_NS: one 8000-byte datagram, checked by its hash.
udp() {
    local out spid
    PORT=$((PORT + 1))
    out=$WORK/udp.$PORT
    in_ns "$1" "$PY" "$WORK/udp.py" server "$2" "$PORT" "$out" &
    spid=$!
    BG="$BG $spid"
    wait_ready "$out"
    in_ns "$3" "$PY" "$WORK/udp.py" client "$2" "$PORT" "$WORK/dgram"
    wait "$spid" || fail "no UDP datagram at $2"
    [ "$(cat "$out")" = "$DGRAM_SUM" ] || fail "UDP datagram to $2: got $(cat "$out")"
}

# xfer SERVER_NS ADDR CLIENT_NS: 1 MiB over TCP, checked by its hash.
xfer() {
    local out spid
    PORT=$((PORT + 1))
    out=$WORK/xfer.$PORT
    in_ns "$1" "$PY" "$WORK/xfer.py" server "$2" "$PORT" "$out" &
    spid=$!
    BG="$BG $spid"
    wait_ready "$out"
    in_ns "$3" timeout 40 "$PY" "$WORK/xfer.py" client "$2" "$PORT" "$WORK/data" ||
        fail "TCP transfer to $2"
    wait "$spid" || fail "TCP server at $2"
    [ "$(cat "$out")" = "$DATA_SUM" ] || fail "TCP transfer to $2: got $(cat "$out")"
}

step "namespaces, veth with MTU $LINK_MTU, ipsecifd -H on both"
veth_pair "$LINK_MTU"
PIDA=
PIDB=

sas_esp() {
    cat <<EOF
add $A4 $B4 esp 0x1001 -m transport -E aes-gcm-16 $KG1;
add $B4 $A4 esp 0x1002 -m transport -E aes-gcm-16 $KG2;
add $A6 $B6 esp 0x1003 -m transport -E aes-gcm-16 $KG3;
add $B6 $A6 esp 0x1004 -m transport -E aes-gcm-16 $KG4;
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
policies() {
    local req=$2 me4=$A4 peer4=$B4 me6=$A6 peer6=$B6
    if [ "$1" = B ]; then
        me4=$B4 peer4=$A4 me6=$B6 peer6=$A6
    fi
    echo "spdadd $me4 $peer4 any -P out ipsec $req;"
    echo "spdadd $me6 $peer6 any -P out ipsec $req;"
    echo "spdadd $peer4 $me4 any -P in ipsec $req;"
    echo "spdadd $peer6 $me6 any -P in ipsec $req;"
}

# phase NAME PROTO SAS: everything above with PROTO (50 or 51) on the link.
phase() {
    local name=$1 proto=$2 sas=$3 side r0 f0 t0 n4 n6 leak mtu
    step "$name: fresh daemons (a new ipsech0: no path MTU learnt before)"
    stop "$PIDA"
    stop "$PIDB"
    start_daemon A "$NSA" -x
    start_daemon B "$NSB" -x
    in_ns "$NSA" ip route get "$B4" | grep -v ' mtu ' >/dev/null || fail "a path MTU survived"
    step "$name: pings of 3000 and 8000 bytes, IPv4 and IPv6, both ways"
    for side in A B; do
        ctl "$side" setkey -F
        ctl "$side" setkey -FP
        { $sas; policies "$side" "${name%%-*}/transport//require"; } | ctl "$side" setkey -c
    done
    r0=$(stat_of A "host datagrams reassembled")
    f0=$(stat_of A "host packets fragmented after IPsec")
    t0=$(stat_of A "host packets too big after IPsec (ICMP error written back)")
    capture_start "$name"
    bigping "$NSA" "$B4" 3000
    bigping "$NSA" "$B6" 3000
    bigping "$NSB" "$A4" 8000
    bigping "$NSB" "$A6" 8000
    step "$name: an 8000-byte UDP datagram each way, IPv4 (DF clear) and IPv6"
    udp "$NSB" "$B4" "$NSA"
    udp "$NSB" "$B6" "$NSA"
    udp "$NSA" "$A4" "$NSB"
    udp "$NSA" "$A6" "$NSB"
    step "$name: a $LINK_MTU-byte IPv4 ping with DF set gets 'fragmentation needed'"
    if in_ns "$NSA" ping -c 1 -W 3 -M do -s $((LINK_MTU - 28)) "$B4" >"$WORK/df.out" 2>&1; then
        cat "$WORK/df.out"
        fail "$name: a DF ping of $LINK_MTU bytes was answered over a $LINK_MTU-byte link with IPsec"
    fi
    cat "$WORK/df.out"
    grepq -iE 'frag needed|message too long' "$WORK/df.out" || fail "$name: ping saw no error"
    [ "$(stat_of A "host packets too big after IPsec (ICMP error written back)")" -gt "$t0" ] ||
        fail "$name: no ICMP error written back"
    mtu=$(in_ns "$NSA" ip route get "$B4" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
    echo "$name: path MTU to $B4 now ${mtu:-none}"
    [ -n "$mtu" ] && [ "$mtu" -lt "$LINK_MTU" ] || fail "$name: the kernel kept no lower path MTU"
    # Under the MTU it learnt, DF pings pass.
    in_ns "$NSA" ping -c 2 -i 0.2 -W 3 -M do -s $((mtu - 28)) "$B4" >/dev/null ||
        fail "$name: DF ping of $mtu bytes"
    step "$name: a $LINK_MTU-byte IPv6 ping (whole from the host) gets 'packet too big'"
    t0=$(stat_of A "host packets too big after IPsec (ICMP error written back)")
    in_ns "$NSA" ping -c 1 -W 2 -s $((LINK_MTU - 48)) "$B6" >"$WORK/ptb.out" 2>&1 || true
    cat "$WORK/ptb.out"
    grepq -i 'packet too big' "$WORK/ptb.out" || fail "$name: ping saw no packet too big"
    [ "$(stat_of A "host packets too big after IPsec (ICMP error written back)")" -gt "$t0" ] ||
        fail "$name: no ICMPv6 error written back"
    mtu=$(in_ns "$NSA" ip -6 route get "$B6" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
    echo "$name: path MTU to $B6 now ${mtu:-none}"
    [ -n "$mtu" ] && [ "$mtu" -lt "$LINK_MTU" ] || fail "$name: the kernel kept no lower IPv6 path MTU"
    # Now the kernel cuts before IPsec, and the daemon after it.
    in_ns "$NSA" ping -c 2 -i 0.2 -W 3 -s $((LINK_MTU - 48)) "$B6" >/dev/null ||
        fail "$name: IPv6 ping of $LINK_MTU bytes after the error"
    step "$name: 1 MiB over TCP, IPv4 and IPv6"
    in_ns "$NSA" ip route flush cache
    in_ns "$NSA" ip -6 route flush cache
    xfer "$NSB" "$B4" "$NSA"
    xfer "$NSA" "$A6" "$NSB"
    xfer "$NSA" "$A4" "$NSB"
    xfer "$NSB" "$B6" "$NSA"
    capture_stop
    n4=$(count "ip proto $proto and (ip[6:2] & 0x3fff) != 0")
    n6=$(count "ip6[6] = 44 and ip6[40] = $proto")
    leak=$(count "$LEAK")
    echo "$name: $n4 IPv4 and $n6 IPv6 fragments of protocol $proto on the link, $leak in clear"
    if [ "$leak" -ne 0 ]; then
        tcpdump -r "$CAP" -n -c 5 "$LEAK" 2>/dev/null || true
        fail "$name: $leak cleartext packets between the hosts"
    fi
    [ "$n4" -ge 12 ] || fail "$name: only $n4 IPv4 fragments of protocol $proto"
    [ "$n6" -ge 12 ] || fail "$name: only $n6 IPv6 fragments of protocol $proto"
    # TCP learnt the path MTU: its segments are not cut (the 1 MiB each way
    # would be some 1500 fragments).
    [ "$n6" -lt 400 ] || fail "$name: $n6 IPv6 fragments: TCP did not learn the path MTU"
    [ "$(count "ip and ip[6:2] & 0x3fff != 0 and greater $((LINK_MTU + 15))")" -eq 0 ] ||
        fail "$name: a fragment larger than the link"
    [ $(($(stat_of A "host datagrams reassembled") - r0)) -ge 8 ] ||
        fail "$name: A reassembled little"
    [ $(($(stat_of A "host packets fragmented after IPsec") - f0)) -ge 8 ] ||
        fail "$name: A fragmented little"
}

phase esp-gcm 50 sas_esp
phase ah-sha256 51 sas_ah

step "stats: host mode's counters"
ctl A stats | grep ' host '
[ "$(stat_of A "host fragments dropped")" -eq 0 ] || fail "A dropped fragments"
[ "$(stat_of B "host fragments dropped")" -eq 0 ] || fail "B dropped fragments"
echo "PASS"
