#!/usr/bin/env bash
# Host traffic in ESP-in-UDP (RFC 3948) through a NAT, as NetBSD's
# t_ipsec_natt does it: host A (192.0.2.1) sits behind a NAT namespace N
# that rewrites its UDP 4500 to 198.51.100.254:1024; host B (198.51.100.2)
# is outside. A and B run `ipsecifd -H -N` with esp-udp SAs in transport
# mode and require policies (B knows A by the NAT's address, as an IKE
# daemon would have learned it).
#   - pings and a TCP transfer pass both ways; the TCP segments' checksums
#     were computed for A's own address, so the transfer also shows that B
#     recomputes them for the address it sees (RFC 3948 section 3.1.2);
#   - on the outside link only UDP 4500 <-> 1024 passes, no cleartext;
#   - the host counters count the packets opened;
#   - control: the same pings with B's daemon stopped get no answer (and
#     send nothing in clear).
#
# usage: host_natt.sh IPSECIFD IPSECIFCTL
# Needs root, network namespaces, tcpdump, nft and python3 (exit 77,
# "skipped", otherwise).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")

NETNS_TAG=natt
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

# shellcheck source=host_lib.sh
. "$(dirname "$0")/host_lib.sh"
host_prereqs tcpdump nft
usage_text=$("$IPSECIFD" -h 2>&1 || true)
if ! grepq -- '-N' <<<"$usage_text"; then
    echo "SKIP: ipsecifd has no -N"
    exit 77
fi

NSN=$ID-n
HOST_EXTRA_NS=$NSN

A=192.0.2.1
NA=192.0.2.254
NB=198.51.100.254
B=198.51.100.2
K1=0x0102030405060708090a0b0c0d0e0f1011121314
K2=0x2122232425262728292a2b2c2d2e2f3031323334

# stat SIDE TEXT: the counter of `ipsecifctl stats` whose line ends in TEXT.
stat() {
    ctl "$1" stats | awk -v t="$2" 'index($0, t) { print $1; exit }'
}

step "namespaces: A - N (NAT) - B"
ip netns add "$NSA"
ip netns add "$NSB"
ip netns add "$NSN"
ip link add a-n netns "$NSA" type veth peer name n-a netns "$NSN"
ip link add n-b netns "$NSN" type veth peer name b-n netns "$NSB"
in_ns "$NSA" ip link set lo up
in_ns "$NSA" ip addr add $A/24 dev a-n
in_ns "$NSA" ip link set a-n up
in_ns "$NSA" ip route add default via $NA
in_ns "$NSN" ip link set lo up
in_ns "$NSN" ip addr add $NA/24 dev n-a
in_ns "$NSN" ip addr add $NB/24 dev n-b
in_ns "$NSN" ip link set n-a up
in_ns "$NSN" ip link set n-b up
in_ns "$NSN" sysctl -qw net.ipv4.ip_forward=1
in_ns "$NSN" nft -f - <<EOF
table ip natt_test {
    chain post {
        type nat hook postrouting priority 100;
        oifname "n-b" udp sport 4500 snat to $NB:1024
        oifname "n-b" masquerade
    }
}
EOF
in_ns "$NSB" ip link set lo up
in_ns "$NSB" ip addr add $B/24 dev b-n
in_ns "$NSB" ip link set b-n up
sleep 1

start_daemon A "$NSA" -N -x
start_daemon B "$NSB" -N -x

step "SAs and policies (esp-udp, transport, require)"
ctl A setkey -c <<EOF >/dev/null
add $A[4500] $B[4500] esp-udp 0x5001 -m transport -E aes-gcm-16 $K1;
add $B[4500] $A[4500] esp-udp 0x5002 -m transport -E aes-gcm-16 $K2;
spdadd $A $B any -P out ipsec esp/transport//require;
spdadd $B $A any -P in ipsec esp/transport//require;
EOF
ctl B setkey -c <<EOF >/dev/null
add $NB[1024] $B[4500] esp-udp 0x5001 -m transport -E aes-gcm-16 $K1;
add $B[4500] $NB[1024] esp-udp 0x5002 -m transport -E aes-gcm-16 $K2;
spdadd $B $NB any -P out ipsec esp/transport//require;
spdadd $NB $B any -P in ipsec esp/transport//require;
EOF

step "pings and TCP through the NAT"
ip netns exec "$NSN" tcpdump -n -i n-b -s 160 -B 16384 -w "$WORK/outside.pcap" -U --immediate-mode >/dev/null 2>&1 &
BG="$BG $!"
sleep 1
in_ns "$NSA" ping -c 5 -i 0.2 -W 2 $B >"$WORK/ping.log" 2>&1 || fail "ping A -> B: $(tail -n 2 "$WORK/ping.log")"
cat >"$WORK/tcp.py" <<'EOF'
import hashlib, socket, sys
mode, host = sys.argv[1], sys.argv[2]
data = bytes((i * 7 + 3) & 0xff for i in range(200000))
if mode == 'server':
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 5001))
    s.listen(1)
    s.settimeout(20)
    c, _ = s.accept()
    c.settimeout(20)
    got = b''
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += b
    print(hashlib.sha256(got).hexdigest(), len(got))
else:
    c = socket.create_connection((host, 5001), timeout=20)
    c.sendall(data)
    c.close()
    print(hashlib.sha256(data).hexdigest(), len(data))
EOF
ip netns exec "$NSB" "$PY" "$WORK/tcp.py" server $B >"$WORK/tcp_server.out" 2>"$WORK/tcp_server.log" &
SRV=$!
sleep 0.5
in_ns "$NSA" "$PY" "$WORK/tcp.py" client $B >"$WORK/tcp_client.out" 2>"$WORK/tcp_client.log" ||
    fail "TCP client: $(tail -n 2 "$WORK/tcp_client.log")"
wait "$SRV" || fail "TCP server: $(tail -n 2 "$WORK/tcp_server.log")"
[ "$(cat "$WORK/tcp_server.out")" = "$(cat "$WORK/tcp_client.out")" ] ||
    fail "TCP through the NAT: sent $(cat "$WORK/tcp_client.out"), received $(cat "$WORK/tcp_server.out")"
echo "TCP: $(cat "$WORK/tcp_server.out")"
sleep 0.5
for p in $BG; do kill -INT "$p" 2>/dev/null || true; done
for p in $BG; do wait "$p" 2>/dev/null || true; done
BG=

udp=$(tcpdump -n -r "$WORK/outside.pcap" "udp and host $NB and host $B and port 4500" 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$WORK/outside.pcap" "ip and host $B and not (udp and (port 4500 or port 1024))" 2>/dev/null | wc -l)
echo "outside: $udp ESP-in-UDP packets, $clear others"
[ "$udp" -ge 20 ] || fail "only $udp ESP-in-UDP packets outside the NAT"
[ "$clear" -eq 0 ] || fail "$clear packets outside the NAT are not ESP in UDP"
tcpdump -n -r "$WORK/outside.pcap" "udp and src $NB and src port 1024 and dst port 4500" 2>/dev/null |
    grepq . || fail "no packet from the NAT's port 1024"

in_b=$(stat B "host packets received with IPsec and allowed")
in_a=$(stat A "host packets received with IPsec and allowed")
echo "host packets opened: A $in_a, B $in_b"
[ "${in_b:-0}" -ge 20 ] || fail "B opened only ${in_b:-0} host packets"
[ "${in_a:-0}" -ge 5 ] || fail "A opened only ${in_a:-0} host packets"

step "control: B's daemon stopped, A's pings get no answer"
stop "$PIDB"
PIDB=
if in_ns "$NSA" ping -c 2 -i 0.2 -W 1 $B >/dev/null 2>&1; then
    fail "ping answered with B's daemon stopped"
fi
echo "PASS"
