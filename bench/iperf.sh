#!/usr/bin/env bash
# TCP throughput through an ipsecif tunnel between two example routers, against
# the same path without the tunnel, and the CPU the two ipsecifd spent.
#
# Two network namespaces joined by a veth pair (198.51.100.1 and .2), each
# running ipsecifd with ipsec0 (203.0.113.1 --> 203.0.113.2, SAs by hand).
# iperf3 runs DURATION seconds (default 10) through the tunnel (inner
# addresses), then over the veth directly (outer addresses). Prints figures,
# asserts nothing. Needs root; builds ipsecifd and ipsecifctl in BUILD_DIR
# (default build/). ALG picks the ESP algorithm: aes-gcm-16 (default),
# aes-cbc (with hmac-sha256) or chacha20-poly1305. IPSECIFD_ARGS are added
# to both daemons' options (e.g. -O: offloads off, for a before/after
# comparison in one run). NATT=1 puts the tunnel in UDP 4500 (link0).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
DURATION=${DURATION:-10}
ALG=${ALG:-aes-gcm-16}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
IPSECIFD_ARGS=${IPSECIFD_ARGS:-}
NATT=${NATT:-0}

if [ "$(id -u)" -ne 0 ]; then
    echo "iperf.sh: must run as root (network namespaces, TUN devices, raw sockets)" >&2
    exit 1
fi
bash scripts/deps.sh >/dev/null
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIPSECIF_BUILD_EXAMPLES=ON \
    >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" --target ipsecifd ipsecifctl >/dev/null
case $BUILD_DIR in
/*) BIN=$BUILD_DIR/examples/router ;;
*) BIN=$ROOT/$BUILD_DIR/examples/router ;;
esac

NS_A=ipsecif-bench-$$-a
NS_B=ipsecif-bench-$$-b
WORK=$(mktemp -d -t ipsecif-bench.XXXXXX)

cleanup() {
    local rc=$? f
    set +e
    for f in "$WORK"/a.pid "$WORK"/b.pid "$WORK"/iperf3.pid; do
        [ -s "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
    done
    sleep 0.3
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ctl() { # ctl a|b ARGS...
    local side=$1 ns=$NS_A
    shift
    [ "$side" = b ] && ns=$NS_B
    ip netns exec "$ns" "$BIN/ipsecifctl" -s "$WORK/$side.sock" "$@"
}

key() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

for ns in "$NS_A" "$NS_B"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip -n "$NS_A" link add veth0 type veth peer name veth0 netns "$NS_B"
ip -n "$NS_A" addr add 198.51.100.1/24 dev veth0
ip -n "$NS_B" addr add 198.51.100.2/24 dev veth0
ip -n "$NS_A" link set veth0 up
ip -n "$NS_B" link set veth0 up

for side in a b; do
    ns=$NS_A
    [ $side = b ] && ns=$NS_B
    # shellcheck disable=SC2086 # IPSECIFD_ARGS: words on purpose
    ip netns exec "$ns" "$BIN/ipsecifd" $IPSECIFD_ARGS -f -l warn -s "$WORK/$side.sock" -p "$WORK/$side.pid" \
        >"$WORK/$side.log" 2>&1 &
done
for side in a b; do
    for _ in $(seq 200); do
        [ -S "$WORK/$side.sock" ] && [ -s "$WORK/$side.pid" ] && break
        sleep 0.05
    done
    if ! [ -S "$WORK/$side.sock" ]; then
        echo "iperf.sh: ipsecifd ($side) did not start:" >&2
        cat "$WORK/$side.log" >&2
        exit 1
    fi
done

case $ALG in
aes-gcm-16) ealg="aes-gcm-16"; elen=20; aalg="" ;;
chacha20-poly1305) ealg="chacha20-poly1305"; elen=36; aalg="" ;;
aes-cbc) ealg="aes-cbc"; elen=16; aalg="hmac-sha256" ;;
*) echo "iperf.sh: ALG must be aes-gcm-16, aes-cbc or chacha20-poly1305" >&2; exit 1 ;;
esac
K_AB=$(key $elen)
K_BA=$(key $elen)
A_AB=$(key 32)
A_BA=$(key 32)
auth() { [ -n "$aalg" ] && echo "-A $aalg 0x$1"; true; }

ctl a ifconfig ipsec0 create
ctl b ifconfig ipsec0 create
ctl a ifconfig ipsec0 tunnel 198.51.100.1 198.51.100.2
ctl b ifconfig ipsec0 tunnel 198.51.100.2 198.51.100.1
ctl a ifconfig ipsec0 -link2
ctl b ifconfig ipsec0 -link2
if [ "$NATT" = 1 ]; then
    ctl a ifconfig ipsec0 link0
    ctl b ifconfig ipsec0 link0
fi
ctl a ifconfig ipsec0 inet 203.0.113.1/32 203.0.113.2
ctl b ifconfig ipsec0 inet 203.0.113.2/32 203.0.113.1
ctl a ifconfig ipsec0 up
ctl b ifconfig ipsec0 up
uids() {
    ctl "$1" ifconfig ipsec0 |
        sed -nE 's/.*unique id: v4 out ([0-9]+) in ([0-9]+),.*/\1 \2/p'
}
read -r A_OUT A_IN <<<"$(uids a)"
read -r B_OUT B_IN <<<"$(uids b)"
P=""
ESP=esp
if [ "$NATT" = 1 ]; then
    P="[4500]"
    ESP=esp-udp
fi
ctl a setkey -c <<EOF
add 198.51.100.1$P 198.51.100.2$P $ESP 0x1001 -m transport -u $A_OUT -r 8 -E $ealg 0x$K_AB $(auth "$A_AB");
add 198.51.100.2$P 198.51.100.1$P $ESP 0x2001 -m transport -u $A_IN -r 8 -E $ealg 0x$K_BA $(auth "$A_BA");
EOF
ctl b setkey -c <<EOF
add 198.51.100.1$P 198.51.100.2$P $ESP 0x1001 -m transport -u $B_IN -r 8 -E $ealg 0x$K_AB $(auth "$A_AB");
add 198.51.100.2$P 198.51.100.1$P $ESP 0x2001 -m transport -u $B_OUT -r 8 -E $ealg 0x$K_BA $(auth "$A_BA");
EOF

if ! ip netns exec "$NS_A" ping -c 2 -W 2 -q 203.0.113.2 >/dev/null; then
    echo "iperf.sh: no ping through the tunnel; ipsecifd logs:" >&2
    cat "$WORK"/a.log "$WORK"/b.log >&2
    exit 1
fi

ip netns exec "$NS_B" iperf3 -s -D -I "$WORK/iperf3.pid" >/dev/null
for _ in $(seq 50); do
    [ -s "$WORK/iperf3.pid" ] && break
    sleep 0.05
done
sleep 0.2

# utime + stime of a process, in clock ticks.
ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# Busy and total jiffies of the whole machine (all cores), from /proc/stat.
machine() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' \
        /proc/stat
}

# run_iperf DST: received throughput in bit/s and the sender's retransmits.
run_iperf() {
    ip netns exec "$NS_A" iperf3 -c "$1" -t "$DURATION" -J >"$WORK/iperf.json"
    /usr/bin/python3 -c 'import json, sys
e = json.load(open(sys.argv[1]))["end"]
print(int(e["sum_received"]["bits_per_second"]), e["sum_sent"].get("retransmits", 0))' \
        "$WORK/iperf.json"
}

PID_A=$(cat "$WORK/a.pid")
PID_B=$(cat "$WORK/b.pid")
HZ=$(getconf CLK_TCK)

echo "iperf3 TCP, ${DURATION} s each, $ALG, ipsec0 mtu $(ip -n "$NS_A" -o link show ipsec0 |
    sed -nE 's/.* mtu ([0-9]+).*/\1/p'), veth mtu 1500"
read -r m_busy0 m_all0 <<<"$(machine)"
a0=$(ticks "$PID_A")
b0=$(ticks "$PID_B")
t0=$(date +%s.%N)
read -r tun tun_retr <<<"$(run_iperf 203.0.113.2)"
t1=$(date +%s.%N)
a1=$(ticks "$PID_A")
b1=$(ticks "$PID_B")
read -r m_busy1 m_all1 <<<"$(machine)"
# Where tunnel packets were lost: TUN queues (tx dropped: the daemon did not
# read in time), raw ESP sockets (drops: receive buffer full), ipsecif drops.
losses() {
    local side=$1 ns=$NS_A
    [ "$side" = b ] && ns=$NS_B
    printf '  %s: ipsec0 tx dropped %s; raw socket drops %s; ipsecif drops %s\n' "$side" \
        "$(ip -n "$ns" -s -j link show ipsec0 | /usr/bin/python3 -c \
            'import json, sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["dropped"])')" \
        "$(ip netns exec "$ns" awk 'NR > 1 { s += $NF } END { print s + 0 }' /proc/net/raw \
            /proc/net/raw6)" \
        "$(ctl "$side" ifconfig ipsec0 | sed -nE 's/.*drops: (.*)/\1/p')"
}
tun_losses=$(losses a; losses b)
read -r plain plain_retr <<<"$(run_iperf 198.51.100.2)"

awk -v tun="$tun" -v plain="$plain" -v a="$((a1 - a0))" -v b="$((b1 - b0))" -v hz="$HZ" \
    -v t0="$t0" -v t1="$t1" -v tr="$tun_retr" -v pr="$plain_retr" -v ncpu="$(nproc)" \
    -v mb="$((m_busy1 - m_busy0))" -v ma="$((m_all1 - m_all0))" 'BEGIN {
    wall = t1 - t0
    printf "through the tunnel (inner addresses):   %9.1f Mbit/s  (%d retransmits)\n", tun / 1e6, tr
    printf "without the tunnel (outer addresses):   %9.1f Mbit/s  (%d retransmits)\n", plain / 1e6, pr
    printf "ratio tunnel / plain:                    %8.3f\n", tun / plain
    printf "ipsecifd CPU during the tunnel run (%.1f s wall): sender %.0f%%, receiver %.0f%% of one core\n",
        wall, 100 * a / hz / wall, 100 * b / hz / wall
    printf "whole machine busy during the tunnel run: %.0f%% of %d cores\n", 100 * mb / ma, ncpu
    printf "ipsecifd CPU seconds per GB through the tunnel: sender %.2f, receiver %.2f\n",
        (a / hz) / (tun * wall / 8 / 1e9), (b / hz) / (tun * wall / 8 / 1e9)
}'
echo "packet losses after the tunnel run:"
echo "$tun_losses"
echo "port counters (ipsecifctl stats), sender / receiver:"
for side in a b; do
    ctl "$side" stats | sed -n '/^port:/,$p' | grep -E 'tun_gso_in|tun_segments|tun_gro_out|tun_gro_segs|outer_rx_batches|outer_tx_batches|outer_udp_gso ' |
        sed "s/^ */  $side: /"
done
