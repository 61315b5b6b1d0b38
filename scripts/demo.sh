#!/usr/bin/env bash
# The EXAMPLES section of NetBSD's ipsecif(4), reproduced with libipsecif's
# example router in four network namespaces:
#
#   Host_X --[wm1]-- NetBSD_A --[wm0]-- (the Internet) --[wm0]-- NetBSD_B --[wm1]-- Host_Y
#                    [ipsec0] - - - - - - - (tunnel) - - - - - - - [ipsec0]
#
# NetBSD_A and NetBSD_B each run ipsecifd; ipsecifctl gives them the man
# page's configuration (ifconfig ipsec0 create / tunnel / inet, SAs by hand
# with setkey, a route into ipsec0). Host_X then pings Host_Y over IPv4 and
# IPv6 while a capture on the A-B link checks that only ESP crosses it.
#
# Documentation addresses replace the page's private ones:
#   man page                      here
#   wm0 192.168.0.1/.2 /24        198.51.100.1/.2 /24        the A-B link
#   ipsec0 172.16.100.1/.200.1    203.0.113.1 --> 203.0.113.2 (IPv6: 2001:db8:ff::1/::2)
#   A wm1 10.100.0.1/24           192.0.2.1/25   (Host_X 192.0.2.10,  2001:db8:a::/64)
#   B wm1 10.200.0.1/24           192.0.2.129/25 (Host_Y 192.0.2.130, 2001:db8:b::/64)
#
# Needs root. Installs what it needs (scripts/deps.sh), builds into build/,
# removes everything it made on exit. Exits non-zero if a ping fails or
# anything but ESP (and ARP) crosses the A-B link.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if [ "$(id -u)" -ne 0 ]; then
    echo "demo: must run as root (network namespaces, TUN devices, raw sockets):" >&2
    echo "  sudo bash scripts/demo.sh" >&2
    exit 1
fi

bash scripts/deps.sh

echo "building (log: build/demo-build.log)"
mkdir -p build
if ! {
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIPSECIF_BUILD_EXAMPLES=ON &&
        cmake --build build -j "$JOBS" --target ipsecifd ipsecifctl
} >build/demo-build.log 2>&1; then
    cat build/demo-build.log
    echo "demo: build failed" >&2
    exit 1
fi
BIN=$ROOT/build/examples/router

# ---- names, addresses, cleanup ----
P=ipsecif-demo-$$
NS_A=$P-NetBSD_A
NS_B=$P-NetBSD_B
NS_X=$P-Host_X
NS_Y=$P-Host_Y
WORK=$(mktemp -d -t ipsecif-demo.XXXXXX)
SOCK_A=$WORK/NetBSD_A.sock
SOCK_B=$WORK/NetBSD_B.sock
CAP_PID=

cleanup() {
    local rc=$? pidfile
    set +e
    [ -n "$CAP_PID" ] && kill "$CAP_PID" 2>/dev/null && wait "$CAP_PID" 2>/dev/null
    for pidfile in "$WORK"/NetBSD_A.pid "$WORK"/NetBSD_B.pid; do
        if [ -s "$pidfile" ]; then
            kill -TERM "$(cat "$pidfile")" 2>/dev/null
        fi
    done
    for pidfile in "$WORK"/NetBSD_A.pid "$WORK"/NetBSD_B.pid; do
        for _ in $(seq 50); do
            [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || break
            sleep 0.1
        done
    done
    for ns in "$NS_X" "$NS_A" "$NS_B" "$NS_Y"; do
        ip netns del "$ns" 2>/dev/null
    done
    if [ "$rc" -ne 0 ]; then
        for f in "$WORK"/NetBSD_A.log "$WORK"/NetBSD_B.log; do
            [ -s "$f" ] && { echo "---- $(basename "$f") (last 30 lines)"; tail -n 30 "$f"; }
        done
    fi
    rm -rf "$WORK"
    echo
    echo "removed the namespaces, daemons and files of this demo"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- how the demo talks ----
say() {
    echo
    echo "$@" | fold -s -w 78
}

# on NAME NS CMD...: show the command as NAME's shell prompt, then run it.
on() {
    local name=$1 ns=$2
    shift 2
    echo "${name}# $*"
    ip netns exec "$ns" "$@"
}

ctl_a() {
    echo "NetBSD_A# ipsecifctl $*"
    ip netns exec "$NS_A" "$BIN/ipsecifctl" -s "$SOCK_A" "$@"
}

ctl_b() {
    echo "NetBSD_B# ipsecifctl $*"
    ip netns exec "$NS_B" "$BIN/ipsecifctl" -s "$SOCK_B" "$@"
}

hexkey() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# ---- the machines and their wires ----
say "== ipsecif(4) EXAMPLES, in network namespaces =="
say "Four namespaces stand for the man page's machines: $NS_X, $NS_A, $NS_B, $NS_Y."
for ns in "$NS_X" "$NS_A" "$NS_B" "$NS_Y"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # No duplicate address detection on the links made below: it would hold
    # the first IPv6 ping back by a second while link-local addresses settle.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
done
# veth pairs named as the man page's interfaces: wm0 faces the Internet, wm1 the host.
ip -n "$NS_A" link add wm0 type veth peer name wm0 netns "$NS_B"
ip -n "$NS_A" link add wm1 type veth peer name eth0 netns "$NS_X"
ip -n "$NS_B" link add wm1 type veth peer name eth0 netns "$NS_Y"
# The A-B link carries IPv4 only, as in the man page; so every frame on it is
# either ESP or ARP, and the capture below can say so strictly.
for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.wm0.disable_ipv6=1
done

say "NetBSD_A and NetBSD_B route between their two sides (forwarding on), and each
runs ipsecifd, the example router on libipsecif: it owns the ipsec interfaces
(TUN devices) and their SADB and SPD, and ipsecifctl talks to it as
ifconfig(8) and setkey(8) talk to a NetBSD kernel."
for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
done
ip netns exec "$NS_A" "$BIN/ipsecifd" -f -s "$SOCK_A" -p "$WORK/NetBSD_A.pid" \
    >"$WORK/NetBSD_A.log" 2>&1 &
ip netns exec "$NS_B" "$BIN/ipsecifd" -f -s "$SOCK_B" -p "$WORK/NetBSD_B.pid" \
    >"$WORK/NetBSD_B.log" 2>&1 &
for s in "$SOCK_A" "$SOCK_B"; do
    for _ in $(seq 100); do
        [ -S "$s" ] && break
        sleep 0.05
    done
    [ -S "$s" ] || { echo "demo: ipsecifd did not start" >&2; exit 1; }
done

say "Host_X and Host_Y are plain hosts behind NetBSD_A and NetBSD_B."
on Host_X "$NS_X" ip addr add 192.0.2.10/25 dev eth0
on Host_X "$NS_X" ip addr add 2001:db8:a::10/64 dev eth0 nodad
on Host_X "$NS_X" ip link set eth0 up
on Host_X "$NS_X" ip route add default via 192.0.2.1
on Host_X "$NS_X" ip -6 route add default via 2001:db8:a::1
on Host_Y "$NS_Y" ip addr add 192.0.2.130/25 dev eth0
on Host_Y "$NS_Y" ip addr add 2001:db8:b::10/64 dev eth0 nodad
on Host_Y "$NS_Y" ip link set eth0 up
on Host_Y "$NS_Y" ip route add default via 192.0.2.129
on Host_Y "$NS_Y" ip -6 route add default via 2001:db8:b::1

# ---- the man page, step by step ----
say "-- '# ifconfig wm0 inet 192.168.0.1/24': the outer (Internet-facing) address.
Here: 198.51.100.1/24 on NetBSD_A, 198.51.100.2/24 on NetBSD_B."
on NetBSD_A "$NS_A" ip addr add 198.51.100.1/24 dev wm0
on NetBSD_A "$NS_A" ip link set wm0 up
on NetBSD_B "$NS_B" ip addr add 198.51.100.2/24 dev wm0
on NetBSD_B "$NS_B" ip link set wm0 up

say "-- '# ifconfig ipsec0 create': a new ipsec interface. ipsecifd makes a TUN
device named ipsec0 in the namespace for it."
ctl_a ifconfig ipsec0 create
ctl_b ifconfig ipsec0 create

say "-- '# ifconfig ipsec0 tunnel 192.168.0.1 192.168.0.2': the tunnel's outer
source and destination. Setting them creates, as one unit, the four security
policies the man page lists (IPv4 and IPv6, out and in,
esp/transport//unique), each with its own unique id:"
ctl_a ifconfig ipsec0 tunnel 198.51.100.1 198.51.100.2
ctl_b ifconfig ipsec0 tunnel 198.51.100.2 198.51.100.1
ctl_a setkey -DP

say "-- '# ifconfig ipsec0 inet 172.16.100.1/32 172.16.200.1': the inner,
point-to-point addresses of the tunnel. Here 203.0.113.1 --> 203.0.113.2.
Beyond the man page, IPv6 inner addresses too (link2, forwarding inner IPv6,
is on by default)."
ctl_a ifconfig ipsec0 inet 203.0.113.1/32 203.0.113.2
ctl_a ifconfig ipsec0 inet6 2001:db8:ff::1/64
ctl_b ifconfig ipsec0 inet 203.0.113.2/32 203.0.113.1
ctl_b ifconfig ipsec0 inet6 2001:db8:ff::2/64
ctl_a ifconfig ipsec0 up
ctl_b ifconfig ipsec0 up

say "-- 'start IKE daemon or set security associates manually.' We set them by
hand, as the man page suggests, with setkey's -u option: each SA carries the
unique id of the interface policy it serves, read from the listing:"
ctl_a ifconfig ipsec0
ctl_b ifconfig ipsec0
uid() { # uid LISTING FIELD(1..4: v4 out, v4 in, v6 out, v6 in)
    sed -nE 's/.*unique id: v4 out ([0-9]+) in ([0-9]+), v6 out ([0-9]+) in ([0-9]+).*/\1 \2 \3 \4/p' \
        <<<"$1" | cut -d' ' -f"$2"
}
LA=$(ip netns exec "$NS_A" "$BIN/ipsecifctl" -s "$SOCK_A" ifconfig ipsec0)
LB=$(ip netns exec "$NS_B" "$BIN/ipsecifctl" -s "$SOCK_B" ifconfig ipsec0)
for i in 1 2 3 4; do
    if [ -z "$(uid "$LA" $i)" ] || [ -z "$(uid "$LB" $i)" ]; then
        echo "demo: no unique ids in the ipsec0 listing" >&2
        exit 1
    fi
done

say "One SA per direction and inner family, AES-GCM-16 with fresh random keys
(16-byte key + 4-byte salt). SPI 0x1001 carries inner IPv4 from A to B, 0x2001
from B to A; 0x1003 and 0x2003 the same for inner IPv6. On A the A->B SAs
serve its 'out' policies, on B its 'in' policies, so the -u ids differ per
side. -r 8 gives a 64-packet anti-replay window."
K1=$(hexkey 20)
K2=$(hexkey 20)
K3=$(hexkey 20)
K4=$(hexkey 20)
sa_lines() { # sa_lines V4_AB V4_BA V6_AB V6_BA: unique ids for the four SAs
    cat <<EOF
add 198.51.100.1 198.51.100.2 esp 0x1001 -m transport -u $1 -r 8 -E aes-gcm-16 0x$K1;
add 198.51.100.2 198.51.100.1 esp 0x2001 -m transport -u $2 -r 8 -E aes-gcm-16 0x$K2;
add 198.51.100.1 198.51.100.2 esp 0x1003 -m transport -u $3 -r 8 -E aes-gcm-16 0x$K3;
add 198.51.100.2 198.51.100.1 esp 0x2003 -m transport -u $4 -r 8 -E aes-gcm-16 0x$K4;
EOF
}
SA_A=$(sa_lines "$(uid "$LA" 1)" "$(uid "$LA" 2)" "$(uid "$LA" 3)" "$(uid "$LA" 4)")
SA_B=$(sa_lines "$(uid "$LB" 2)" "$(uid "$LB" 1)" "$(uid "$LB" 4)" "$(uid "$LB" 3)")
echo "NetBSD_A# ipsecifctl setkey -c <<EOF"
echo "$SA_A"
echo "EOF"
ip netns exec "$NS_A" "$BIN/ipsecifctl" -s "$SOCK_A" setkey -c <<<"$SA_A"
echo "NetBSD_B# ipsecifctl setkey -c <<EOF"
echo "$SA_B"
echo "EOF"
ip netns exec "$NS_B" "$BIN/ipsecifctl" -s "$SOCK_B" setkey -c <<<"$SA_B"
ctl_a setkey -D

say "-- '# ifconfig wm1 inet 10.100.0.1/24': the inside network (Host_X's side,
Host_Y's side on B)."
on NetBSD_A "$NS_A" ip addr add 192.0.2.1/25 dev wm1
on NetBSD_A "$NS_A" ip addr add 2001:db8:a::1/64 dev wm1 nodad
on NetBSD_A "$NS_A" ip link set wm1 up
on NetBSD_B "$NS_B" ip addr add 192.0.2.129/25 dev wm1
on NetBSD_B "$NS_B" ip addr add 2001:db8:b::1/64 dev wm1 nodad
on NetBSD_B "$NS_B" ip link set wm1 up

say "-- '# route add 10.200.0.1 172.16.100.1': traffic for the other side goes
into ipsec0. The man page routes the far router's wm1 address; for Host_X and
Host_Y to talk, each router routes the whole far network (IPv4 and IPv6)
into its ipsec0:"
on NetBSD_A "$NS_A" ip route add 192.0.2.128/25 dev ipsec0
on NetBSD_A "$NS_A" ip -6 route add 2001:db8:b::/64 dev ipsec0
on NetBSD_B "$NS_B" ip route add 192.0.2.0/25 dev ipsec0
on NetBSD_B "$NS_B" ip -6 route add 2001:db8:a::/64 dev ipsec0

# ---- traffic, and what the Internet sees of it ----
say "== Host_X and Host_Y talk through the tunnel; a capture on NetBSD_A's wm0
(the A-B link, the 'Internet') records what crosses it =="
ip netns exec "$NS_A" tcpdump -i wm0 -n -U --immediate-mode -w "$WORK/wm0.pcap" 2>"$WORK/tcpdump.log" &
CAP_PID=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$WORK/tcpdump.log" 2>/dev/null && break
    sleep 0.05
done

fail=0
on Host_X "$NS_X" ping -n -c 4 -i 0.3 -W 3 192.0.2.130 || fail=1
on Host_X "$NS_X" ping -6 -n -c 4 -i 0.3 -W 3 2001:db8:b::10 || fail=1
sleep 0.5
kill "$CAP_PID"
wait "$CAP_PID" 2>/dev/null || true
CAP_PID=

count() {
    tcpdump -r "$WORK/wm0.pcap" -n "$@" 2>/dev/null | wc -l
}
total=$(count)
esp=$(count esp)
arp=$(count arp)
other=$(count not esp and not arp)
clear_icmp=$(count icmp or icmp6)
say "On the A-B link: $total frames: $esp ESP, $arp ARP, $other other; ICMP in the
clear: $clear_icmp. The first ESP frames, as tcpdump shows them (no inner
addresses visible):"
tcpdump -r "$WORK/wm0.pcap" -n esp 2>/dev/null | head -n 4
if [ "$other" -ne 0 ] || [ "$clear_icmp" -ne 0 ]; then
    echo "demo: FAILED: packets other than ESP crossed the A-B link:" >&2
    tcpdump -r "$WORK/wm0.pcap" -n not esp and not arp 2>/dev/null | head -n 20 >&2
    fail=1
fi
# 8 echo requests and 8 replies, each one ESP packet.
if [ "$esp" -lt 16 ]; then
    echo "demo: FAILED: expected at least 16 ESP packets on the A-B link, saw $esp" >&2
    fail=1
fi

say "== State after the run =="
ctl_a ifconfig ipsec0
ctl_b ifconfig ipsec0
ctl_a stats
echo "NetBSD_B# ipsecifctl stats | grep -v '^ *0 '    (the counters that are not zero)"
ip netns exec "$NS_B" "$BIN/ipsecifctl" -s "$SOCK_B" stats | grep -v '^ *0 ' || true

echo
if [ "$fail" -ne 0 ]; then
    echo "demo: FAILED"
    exit 1
fi
echo "demo: OK: Host_X reached Host_Y over IPv4 and IPv6 through ipsec0, and only ESP crossed the A-B link"
