#!/usr/bin/env bash
# End to end: a device on lwIP (examples/lwip/lwip_node, the lwIP port of
# libipsecif) with an ipsecif tunnel to the example router (ipsecifd), and a
# host behind the router. Three network namespaces:
#
#   dev:    lwip_node on TAP lw0, bridged to veth d-r; lwIP owns
#           198.51.100.2 (outer) and 192.0.2.2, 2001:db8:1::2 (inner, ipsec0)
#   router: r-d 198.51.100.1/24; ipsecifd with ipsec0 (192.0.2.1 --> 192.0.2.2,
#           2001:db8:1::1/64); r-h 203.0.113.1/24, 2001:db8:2::1/64; forwarding
#   host:   h-r 203.0.113.2/24, 2001:db8:2::2/64, default routes to the router
#
# AES-GCM-16 SAs by hand on both sides (same SPIs and keys). Checks, IPv4 and
# IPv6 inner: the host pings the device and talks to its TCP echo service;
# the device pings the host and talks to a TCP echo server on the host; the
# router counts the packets and no authentication failure; only ESP crosses
# the outer link. Then the outer family is switched to IPv6
# (2001:db8:100::/64) and the same runs again, with received frames handed
# to lwIP as pbuf chains so that the port's copy path is taken. The device
# must stop cleanly and report how its packets were handled. Last, NAT-T
# (link0 on both sides, ESP in UDP 4500) over outer IPv4.
#
# usage: lwip_e2e.sh LWIP_NODE IPSECIFD IPSECIFCTL
# Needs root (exit 77, "skipped", otherwise). Everything it creates is named
# after its process id and removed on exit.
set -euo pipefail

NODE=$(readlink -f "$1")
IPSECIFD=$(readlink -f "$2")
IPSECIFCTL=$(readlink -f "$3")

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: needs root"
    exit 77
fi
for tool in ip ping python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: needs $tool"
        exit 77
    fi
done
if [ ! -c /dev/net/tun ]; then
    echo "SKIP: needs /dev/net/tun"
    exit 77
fi

ID=ipsecif-lwip-$$
NSD=$ID-dev
NSR=$ID-router
NSH=$ID-host
WORK=$(mktemp -d)
PIDR=
PIDN=
PIDE=
PIDC=

stop() {
    local p=$1 i
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

cleanup() {
    local rc=$? p
    for p in $PIDN $PIDR $PIDE $PIDC; do
        stop "$p"
    done
    ip netns del "$NSD" 2>/dev/null || true
    ip netns del "$NSR" 2>/dev/null || true
    ip netns del "$NSH" 2>/dev/null || true
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        for f in "$WORK"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $(basename "$f") (last 40 lines)"
            tail -n 40 "$f"
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    exit 1
}

step() {
    echo "-- $*"
}

in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

ctl() {
    "$IPSECIFCTL" -s "$WORK/r.sock" "$@"
}

# wait_for FILE TEXT SECONDS
wait_for() {
    local i
    for i in $(seq $(($3 * 10))); do
        if grep -qF -- "$2" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

K1=0x0102030405060708090a0b0c0d0e0f1011121314
K2=0x2122232425262728292a2b2c2d2e2f3031323334
K3=0x4142434445464748494a4b4c4d4e4f5051525354
K4=0x6162636465666768696a6b6c6d6e6f7071727374

step "namespaces $NSD, $NSR, $NSH"
ip netns add "$NSD"
ip netns add "$NSR"
ip netns add "$NSH"
for ns in "$NSD" "$NSR" "$NSH"; do
    in_ns "$ns" ip link set lo up
done
ip link add d-r netns "$NSD" type veth peer name r-d netns "$NSR"
ip link add r-h netns "$NSR" type veth peer name h-r netns "$NSH"
# The device's link: TAP lw0 and the veth in one bridge; the namespace's own
# kernel has no address on it.
in_ns "$NSD" ip tuntap add dev lw0 mode tap
in_ns "$NSD" ip link add br0 type bridge
in_ns "$NSD" sysctl -qw net.ipv6.conf.br0.disable_ipv6=1 net.ipv6.conf.lw0.disable_ipv6=1 \
    net.ipv6.conf.d-r.disable_ipv6=1
in_ns "$NSD" ip link set lw0 master br0
in_ns "$NSD" ip link set d-r master br0
for l in lw0 d-r br0; do
    in_ns "$NSD" ip link set "$l" up
done
in_ns "$NSR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
in_ns "$NSR" ip addr add 203.0.113.1/24 dev r-h
in_ns "$NSR" ip addr add 2001:db8:2::1/64 dev r-h nodad
in_ns "$NSR" ip link set r-d up
in_ns "$NSR" ip link set r-h up
in_ns "$NSH" ip addr add 203.0.113.2/24 dev h-r
in_ns "$NSH" ip addr add 2001:db8:2::2/64 dev h-r nodad
in_ns "$NSH" ip link set h-r up
in_ns "$NSH" ip route add default via 203.0.113.1
in_ns "$NSH" ip -6 route add default via 2001:db8:2::1

step "echo server on the host (TCP 7007, IPv4 and IPv6)"
cat >"$WORK/echo.py" <<'EOF'
import socket, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 7007))
s.listen(8)
def serve(c):
    with c:
        while True:
            d = c.recv(4096)
            if not d:
                return
            c.sendall(d)
while True:
    c, a = s.accept()
    print("connection from", a[0], flush=True)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
ip netns exec "$NSH" python3 "$WORK/echo.py" >"$WORK/echo.log" 2>&1 &
PIDE=$!

cat >"$WORK/client.py" <<'EOF'
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
line = b"hello lwIP through ipsec0 " + addr.encode() + b"\n"
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
for attempt in range(5):
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as c:
            c.settimeout(3)
            c.connect((addr, port))
            c.sendall(line)
            got = b""
            while len(got) < len(line):
                d = c.recv(4096)
                if not d:
                    break
                got += d
            if got == line:
                print("echo ok from", addr)
                sys.exit(0)
            print("wrong echo:", got)
    except OSError as e:
        print("attempt", attempt, e)
sys.exit(1)
EOF

step "ipsecifd in $NSR"
ip netns exec "$NSR" "$IPSECIFD" -f -l debug -s "$WORK/r.sock" -p "$WORK/r.pid" \
    </dev/null >"$WORK/router.log" 2>&1 &
PIDR=$!
for _ in $(seq 50); do
    [ -S "$WORK/r.sock" ] && break
    sleep 0.1
done
[ -S "$WORK/r.sock" ] || fail "control socket did not appear"

unique_ids() {
    sed -n 's/.*unique id: v4 out \([0-9]*\) in \([0-9]*\), v6 out \([0-9]*\) in \([0-9]*\).*/\1 \2 \3 \4/p'
}

counter() {
    awk -v t="$2" '{ n = $1; $1 = ""; sub(/^ /, ""); if ($0 == t) print n }' "$1"
}

# run OUTER_FAMILY ROUTER_OUTER DEVICE_OUTER PLEN [NODE_OPTION...]
run() {
    local fam=$1 rout=$2 dout=$3 plen=$4 R4O R4I R6O R6I in0 out0 rc n
    shift 4
    step "outer IPv$fam${*:+ ($*)}: router $rout, device $dout"
    if [ "$fam" = 4 ]; then
        in_ns "$NSR" ip addr add "$rout/$plen" dev r-d
    else
        in_ns "$NSR" ip addr add "$rout/$plen" dev r-d nodad
    fi
    ctl stats >"$WORK/stats0.txt"
    in0=$(counter "$WORK/stats0.txt" "inbound packets processed successfully")
    out0=$(counter "$WORK/stats0.txt" "outbound packets processed successfully")
    ctl ifconfig ipsec0 create tunnel "$rout" "$dout" inet 192.0.2.1/32 192.0.2.2 \
        inet6 2001:db8:1::1/64 up
    local esp=esp rp=$rout dp=$dout wire=esp
    if [ "$*" = "-n" ]; then
        # NAT-T (link0) on both sides: ESP in UDP 4500.
        ctl ifconfig ipsec0 link0
        esp=esp-udp
        rp="$rout[4500]"
        dp="$dout[4500]"
        wire="udp port 4500"
    fi
    read -r R4O R4I R6O R6I <<<"$(ctl ifconfig ipsec0 | unique_ids)"
    [ -n "${R6I:-}" ] || fail "no unique ids in the router's listing"
    ctl setkey -c <<EOF
add $dp $rp $esp 0x1000 -m transport -u $R4I -E aes-gcm-16 $K1;
add $rp $dp $esp 0x1001 -m transport -u $R4O -E aes-gcm-16 $K2;
add $dp $rp $esp 0x2000 -m transport -u $R6I -E aes-gcm-16 $K3;
add $rp $dp $esp 0x2001 -m transport -u $R6O -E aes-gcm-16 $K4;
EOF
    cat >"$WORK/dev.sa" <<EOF
# direction, inner family, SPI, algorithm, key with salt
out 4 0x1000 aes-gcm-16 $K1
in 4 0x1001 aes-gcm-16 $K2
out 6 0x2000 aes-gcm-16 $K3
in 6 0x2001 aes-gcm-16 $K4
EOF
    # Capture the outer link: only ESP (and ARP, neighbour discovery) may cross it.
    if command -v tcpdump >/dev/null 2>&1; then
        ip netns exec "$NSR" tcpdump -n -i r-d -w "$WORK/outer$fam$*.pcap" \
            >"$WORK/tcpdump$fam$*.log" 2>&1 &
        PIDC=$!
        sleep 0.5
    fi

    local log="$WORK/node$fam$*.log"
    : >"$log"
    ip netns exec "$NSD" "$NODE" -t lw0 -a "$dout/$plen" -L "$dout" -R "$rout" \
        -4 192.0.2.2 -6 2001:db8:1::2 -k "$WORK/dev.sa" \
        -c 203.0.113.2:7007 -c '[2001:db8:2::2]:7007' -p 203.0.113.2 -p 2001:db8:2::2 "$@" \
        </dev/null >"$log" 2>&1 &
    PIDN=$!
    wait_for "$log" "ready:" 10 || fail "lwip_node did not come up"
    if grep -q '0102030405060708' "$log"; then
        fail "a key appeared in the device's output"
    fi

    step "host -> device: ping 192.0.2.2 and 2001:db8:1::2"
    in_ns "$NSH" ping -c 3 -i 0.3 -W 3 192.0.2.2 || fail "IPv4 ping to the device"
    ok=0
    for _ in 1 2 3; do
        if in_ns "$NSH" ping -6 -c 3 -i 0.3 -W 3 2001:db8:1::2; then
            ok=1
            break
        fi
        sleep 1
    done
    [ "$ok" -eq 1 ] || fail "IPv6 ping to the device"

    step "host -> device: TCP echo on port 7"
    in_ns "$NSH" python3 "$WORK/client.py" 192.0.2.2 7 || fail "IPv4 TCP echo of the device"
    in_ns "$NSH" python3 "$WORK/client.py" 2001:db8:1::2 7 || fail "IPv6 TCP echo of the device"

    step "device -> host: ping and TCP echo"
    wait_for "$log" "ping 203.0.113.2: reply" 15 || fail "device's IPv4 ping"
    wait_for "$log" "ping 2001:db8:2::2: reply" 15 || fail "device's IPv6 ping"
    wait_for "$log" "tcp 203.0.113.2: echo ok" 15 || fail "device's IPv4 TCP"
    wait_for "$log" "tcp 2001:db8:2::2: echo ok" 15 || fail "device's IPv6 TCP"
    grep -E '^(ping|tcp) ' "$log"

    step "router counters"
    ctl stats >"$WORK/stats$fam.txt"
    in=$(counter "$WORK/stats$fam.txt" "inbound packets processed successfully")
    out=$(counter "$WORK/stats$fam.txt" "outbound packets processed successfully")
    auth=$(counter "$WORK/stats$fam.txt" "inbound packets failed on authentication")
    in=$((${in:-0} - ${in0:-0}))
    out=$((${out:-0} - ${out0:-0}))
    echo "router, this run: $in in, $out out; $auth authentication failures"
    [ "$in" -ge 10 ] && [ "$out" -ge 10 ] || fail "router counters: in $in, out $out"
    [ "${auth:-x}" = 0 ] || fail "authentication failures on the router: ${auth:-none}"

    step "device stops cleanly"
    kill -TERM "$PIDN"
    rc=0
    wait "$PIDN" || rc=$?
    PIDN=
    [ "$rc" -eq 0 ] || fail "lwip_node exited $rc"
    grep '^port:' "$log" || fail "no port counters"
    grep -q '^port: .* sent in place, 0 copied;' "$log" ||
        fail "outer packets were copied again on their way out"
    if [ "$*" = "-s" ]; then
        grep -q '^port: .* 0 copied from a chain' "$log" &&
            fail "chained frames were not copied"
    else
        grep -q '^port: 0 outer packets decrypted in place' "$log" &&
            fail "nothing was decrypted in place"
    fi
    if [ -n "$PIDC" ]; then
        stop "$PIDC"
        PIDC=
        # A leak: an inner address in clear, or anything but ESP and the
        # link's own housekeeping (ARP, IGMP, ICMPv6: neighbour discovery, MLD).
        local filter='net 192.0.2.0/24 or net 203.0.113.0/24 or net 2001:db8:1::/64'
        filter="$filter or net 2001:db8:2::/64"
        filter="$filter or not ($wire or arp or igmp or ip6 protochain 58)"
        leaks=$(tcpdump -n -r "$WORK/outer$fam$*.pcap" "$filter" 2>/dev/null | wc -l)
        n=$(tcpdump -n -r "$WORK/outer$fam$*.pcap" "$wire" 2>/dev/null | wc -l)
        echo "outer link: $n packets of $wire, $leaks others"
        [ "$n" -gt 0 ] || fail "no $wire on the outer link"
        [ "$leaks" -eq 0 ] || {
            tcpdump -n -r "$WORK/outer$fam$*.pcap" "$filter" | head
            fail "clear traffic on the outer link"
        }
    fi
    ctl setkey -F
    ctl ifconfig ipsec0 destroy
    in_ns "$NSR" ip addr del "$rout/$plen" dev r-d
}

run 4 198.51.100.1 198.51.100.2 24
# Outer IPv6, and frames handed to lwIP as pbuf chains (the copy path).
run 6 2001:db8:100::1 2001:db8:100::2 64 -s
# NAT-T: ESP in UDP 4500 over IPv4.
run 4 198.51.100.1 198.51.100.2 24 -n
echo "PASS"
