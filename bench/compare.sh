#!/usr/bin/env bash
# The example router against two other user-space VPNs, side by side in one
# run: ipsecifd, strongSwan's charon with the kernel-libipsec plugin (its own
# user-space ESP over a TUN device) and wireguard-go, each between the same
# two network namespaces, with the bare veth path as the reference.
#
# Topology: namespaces A and B joined by a veth pair (198.51.100.1 and .2,
# MTU 1500). One VPN at a time runs in both namespaces, each with its own
# inner addresses and a tunnel MTU of 1400:
#   bare          198.51.100.1 -> 198.51.100.2   (no tunnel)
#   ipsecifd      203.0.113.1  -> 203.0.113.2    ESP AES-128-GCM-16, SAs by
#                 hand, raw ESP (IP protocol 50), ipsec0 mtu 1400
#   strongSwan    203.0.113.17 -> 203.0.113.18   IKEv2 with a PSK, ESP
#                 AES-128-GCM-16 (the openssl plugin); kernel-libipsec in
#                 5.9.8 always sends ESP in UDP (port 4500), TUN ipsec0
#                 (mtu 1400, the plugin's own)
#   wireguard-go  203.0.113.33 -> 203.0.113.34   wg0 mtu 1400
# charon and wireguard-go run in a private mount namespace with their own
# /run (pid file, control sockets), with a private strongswan.conf that
# loads only the plugins they need and logs to a file: nothing of theirs
# reaches the host outside the namespaces. Everything is removed on exit.
#
# For each path, from A to an iperf3 server in B:
#   TCP 1 and 4 streams  iperf3, DURATION seconds each: received Mbit/s
#   UDP 64 and 1372 B    iperf3 -u -b 0 (as fast as the sender can), UDP
#                        payload bytes (1372 fills a 1400-byte packet, so
#                        nothing is fragmented in the tunnels; UDP_LARGE
#                        changes it): packets per second received, loss
#   ping                 PINGS (200) echo requests 10 ms apart: RTT median, avg
#   CPU per byte         during each TCP run: CPU seconds of the VPN's own
#                        processes (utime + stime from /proc/PID/stat, both
#                        sides, all threads), and of the whole machine from
#                        /proc/stat (kernel: system + irq + softirq; busy:
#                        everything but idle and iowait), each divided by
#                        the bytes received, as seconds per GB
# Then the ratios ipsecifd/strongSwan and ipsecifd/wireguard-go for each
# metric, and the project's target "TCP ipsecifd/strongSwan >= 2.5" with the
# measured value.
#
# Reading it: throughput and packet rate, higher is better; RTT, loss and CPU
# per byte, lower is better. A ratio above 1 means ipsecifd has the larger
# figure. All figures come from one run on one machine; other load on the
# machine (see the load average printed first and last) shows up in every
# column, the machine-wide CPU figures most. Nothing is asserted: the exit
# status is 0 when all paths were measured, 1 when a setup step failed (a
# daemon that did not start, a tunnel that passed no traffic), 77 (skipped)
# without root or a needed package (scripts/deps.sh installs them). A
# measurement that fails on its own (an iperf3 run that timed out) shows as
# "-" with a warning.
#
# Environment: DURATION (seconds per iperf3 run, default 10), PINGS (200),
# UDP_SMALL (64), UDP_LARGE (1372), CRYPTO (ipsecifd -C, default the
# daemon's own: the fastest built), THREADS (ipsecifd -j, default 1),
# BUILD_DIR (build/; ipsecifd and ipsecifctl are built there), JOBS.
#
# usage: sudo bench/compare.sh          DURATION=2 bench/compare.sh (CI)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}
DURATION=${DURATION:-10}
PINGS=${PINGS:-200}
UDP_SMALL=${UDP_SMALL:-64}
UDP_LARGE=${UDP_LARGE:-1372}
CRYPTO=${CRYPTO:-}
THREADS=${THREADS:-1}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
CHARON=${CHARON:-/usr/lib/ipsec/charon}
SS_PLUGINS=${SS_PLUGINS:-/usr/lib/ipsec/plugins}
MTU=1400

skip() {
    echo "compare.sh: SKIP: $*"
    exit 77
}

die() {
    echo "compare.sh: FAIL: $*" >&2
    exit 1
}

warn() {
    echo "compare.sh: warning: $*" >&2
}

for v in DURATION PINGS UDP_SMALL UDP_LARGE; do
    if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
        echo "compare.sh: $v must be a positive whole number, not '${!v}'" >&2
        exit 2
    fi
done
if [ "$UDP_SMALL" -lt 16 ] || [ "$UDP_LARGE" -lt 16 ] || [ "$UDP_LARGE" -gt 65507 ]; then
    echo "compare.sh: UDP_SMALL and UDP_LARGE must be 16..65507 bytes" >&2
    exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
    skip "needs root (network namespaces, TUN devices, mounts)"
fi
if [ ! -c /dev/net/tun ]; then
    skip "needs /dev/net/tun"
fi
missing=()
for tool in ip ss ping iperf3 python3 unshare nsenter mount timeout swanctl wg wireguard-go cmake; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -x "$CHARON" ] || missing+=("$CHARON")
# kernel-libipsec: libcharon-extra-plugins; openssl: libstrongswan-standard-plugins.
for p in random nonce openssl kdf kernel-libipsec kernel-netlink socket-default vici; do
    [ -f "$SS_PLUGINS/libstrongswan-$p.so" ] || missing+=("strongSwan plugin $p")
done
if [ ${#missing[@]} -ne 0 ]; then
    skip "missing: ${missing[*]} (scripts/deps.sh installs them)"
fi

WORK=$(mktemp -d -t ipsecif-compare.XXXXXX)
chmod 700 "$WORK"
NS_A=ipsecif-cmp-$$-a
NS_B=ipsecif-cmp-$$-b
VPN_PIDS=()
SERVER_PID=
STAGE=iperf3
RESULTS=$WORK/results.tsv
: >"$RESULTS"

# stop PID: SIGTERM, then SIGKILL if it has not exited within 5 s.
stop() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

cleanup() {
    local rc=$? p
    set +e
    for p in "${VPN_PIDS[@]}" $SERVER_PID; do
        stop "$p"
    done
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        # The logs of the path that failed (iperf3's only with the bare path).
        for f in "$WORK/$STAGE"*.log; do
            [ -s "$f" ] || continue
            echo "---- $(basename "$f") (last 30 lines)" >&2
            tail -n 30 "$f" >&2
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case $BUILD_DIR in
/*) BDIR=$BUILD_DIR ;;
*) BDIR=$ROOT/$BUILD_DIR ;;
esac
build_args=(-DIPSECIF_BUILD_EXAMPLES=ON)
[ -f "$BDIR/CMakeCache.txt" ] || build_args+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if ! { cmake -S . -B "$BDIR" "${build_args[@]}" &&
    cmake --build "$BDIR" -j "$JOBS" --target ipsecifd ipsecifctl; } >"$WORK/build.out" 2>&1; then
    tail -n 40 "$WORK/build.out" >&2
    die "building ipsecifd and ipsecifctl in $BUILD_DIR failed"
fi
BIN=$BDIR/examples/router

# ---- Topology ----

for ns in "$NS_A" "$NS_B"; do
    ip netns add "$ns" || die "cannot create network namespace $ns"
    ip -n "$ns" link set lo up
done
ip -n "$NS_A" link add veth0 type veth peer name veth0 netns "$NS_B" ||
    die "cannot create the veth pair"
ip -n "$NS_A" addr add 198.51.100.1/24 dev veth0
ip -n "$NS_B" addr add 198.51.100.2/24 dev veth0
ip -n "$NS_A" link set veth0 up
ip -n "$NS_B" link set veth0 up

nsof() { # nsof a|b
    if [ "$1" = a ]; then echo "$NS_A"; else echo "$NS_B"; fi
}

# wait_for COUNT TEST...: retry TEST every 0.1 s, COUNT times at most.
wait_for() {
    local n=$1
    shift
    for _ in $(seq "$n"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# reach NAME DST: the path passes traffic (pings for up to 10 s), or the run fails.
reach() {
    for _ in $(seq 10); do
        if ip netns exec "$NS_A" ping -c 1 -W 1 -q "$2" >/dev/null 2>&1; then
            return 0
        fi
    done
    die "$1: no ping from A to $2 within 10 s: the tunnel passes no traffic"
}

# mtu_of DEV: the MTU of DEV in A, as the kernel has it.
mtu_of() {
    ip -n "$NS_A" -o link show "$1" 2>/dev/null | sed -nE 's/.* mtu ([0-9]+).*/\1/p'
}

stop_vpn() {
    local p
    for p in "${VPN_PIDS[@]}"; do
        stop "$p"
    done
    VPN_PIDS=()
}

# ---- Measurements ----

record() { # record PATH METRIC VALUE
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"
}

# utime + stime of the given processes (all their threads), in clock ticks.
ticks() {
    local p sum=0 t
    for p in "$@"; do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo "$sum"
}

# Kernel (system + irq + softirq) and busy jiffies of the whole machine.
machine() {
    awk '/^cpu / { print $4 + $7 + $8, $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

server_up() {
    ip netns exec "$NS_B" ss -Hltn 'sport = :5201' | grep -q .
}

start_server() {
    ip netns exec "$NS_B" iperf3 -s >>"$WORK/iperf3-server.log" 2>&1 &
    SERVER_PID=$!
    wait_for 50 server_up || die "iperf3 server in B did not start"
}

stop_server() {
    [ -n "$SERVER_PID" ] && stop "$SERVER_PID"
    SERVER_PID=
}

# A run that failed may leave the server waiting for its peer: start anew.
restart_server() {
    stop_server
    start_server
}

# client OUT ARGS...: iperf3 in A, JSON into OUT; fails when iperf3 does.
client() {
    local out=$1
    shift
    timeout $((DURATION + 30)) ip netns exec "$NS_A" iperf3 -J --connect-timeout 5000 \
        -t "$DURATION" "$@" >"$out" 2>>"$WORK/iperf3-client.log"
}

# tcp PATH KEY DST STREAMS PIDS...
tcp() {
    local path=$1 key=$2 dst=$3 streams=$4 k0 k1 m0 m1 v0 v1 out=$WORK/iperf.json
    shift 4
    v0=$(ticks "$@")
    read -r k0 m0 <<<"$(machine)"
    if ! client "$out" -c "$dst" -P "$streams"; then
        warn "$path: iperf3 TCP with $streams stream(s) failed"
        restart_server
        return 0
    fi
    read -r k1 m1 <<<"$(machine)"
    v1=$(ticks "$@")
    python3 - "$out" "$path" "$key" "$((v1 - v0))" "$((k1 - k0))" "$((m1 - m0))" \
        "$(getconf CLK_TCK)" "$#" >>"$RESULTS" <<'EOF'
import json, sys
out, path, key, vpn, kern, busy, hz, nproc = sys.argv[1:]
e = json.load(open(out))["end"]
rx = e["sum_received"]
gb = rx["bytes"] / 1e9
print(f"{path}\t{key}_mbps\t{rx['bits_per_second'] / 1e6:.1f}")
print(f"{path}\t{key}_retr\t{e['sum_sent'].get('retransmits', 0)}")
if gb > 0:
    if int(nproc) > 0:
        print(f"{path}\t{key}_cpu_vpn\t{int(vpn) / int(hz) / gb:.3f}")
    print(f"{path}\t{key}_cpu_kernel\t{int(kern) / int(hz) / gb:.3f}")
    print(f"{path}\t{key}_cpu_busy\t{int(busy) / int(hz) / gb:.3f}")
EOF
}

# udp PATH KEY DST PAYLOAD
udp() {
    local path=$1 key=$2 dst=$3 len=$4 out=$WORK/iperf.json
    if ! client "$out" -c "$dst" -u -b 0 -l "$len"; then
        warn "$path: iperf3 UDP with $len-byte payloads failed"
        restart_server
        return 0
    fi
    python3 - "$out" "$path" "$key" >>"$RESULTS" <<'EOF'
import json, sys
out, path, key = sys.argv[1:]
e = json.load(open(out))["end"]
rx = e["sum_received"]
got = rx["packets"] - rx["lost_packets"]
if rx["seconds"] > 0:
    print(f"{path}\t{key}_tx_kpps\t{e['sum_sent']['packets'] / e['sum_sent']['seconds'] / 1e3:.1f}")
    print(f"{path}\t{key}_kpps\t{got / rx['seconds'] / 1e3:.1f}")
    print(f"{path}\t{key}_loss\t{rx['lost_percent']:.1f}")
EOF
}

# rtt PATH DST: PINGS echo requests 10 ms apart.
rtt() {
    local path=$1 dst=$2
    ip netns exec "$NS_A" ping -c "$PINGS" -i 0.01 -W 1 "$dst" >"$WORK/ping.txt" 2>&1 || true
    python3 - "$WORK/ping.txt" "$path" "$PINGS" >>"$RESULTS" <<'EOF'
import re, statistics, sys
txt, path, n = sys.argv[1:]
t = [float(m) for m in re.findall(r"time=([0-9.]+) ms", open(txt).read())]
if t:
    print(f"{path}\trtt_median\t{statistics.median(t):.3f}")
    print(f"{path}\trtt_avg\t{statistics.mean(t):.3f}")
print(f"{path}\trtt_lost\t{int(n) - len(t)}")
EOF
}

# measure PATH DST PIDS...: everything, for one path.
measure() {
    local path=$1 dst=$2
    shift 2
    echo "-- $path: TCP, UDP, ping to $dst (${DURATION} s per iperf3 run)"
    start_server
    tcp "$path" tcp1 "$dst" 1 "$@"
    tcp "$path" tcp4 "$dst" 4 "$@"
    udp "$path" udp_small "$dst" "$UDP_SMALL"
    udp "$path" udp_large "$dst" "$UDP_LARGE"
    rtt "$path" "$dst"
    stop_server
}

# ---- ipsecifd ----

ctl() { # ctl a|b ARGS...
    local side=$1
    shift
    ip netns exec "$(nsof "$side")" "$BIN/ipsecifctl" -s "$WORK/ipsecifd-$side.sock" "$@"
}

key() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

start_ipsecifd() {
    local side crypto=() a_out a_in b_out b_in k_ab k_ba
    [ -n "$CRYPTO" ] && crypto=(-C "$CRYPTO")
    for side in a b; do
        ip netns exec "$(nsof $side)" "$BIN/ipsecifd" -f -x -l info -j "$THREADS" "${crypto[@]}" \
            -s "$WORK/ipsecifd-$side.sock" -p "$WORK/ipsecifd-$side.pid" \
            >"$WORK/ipsecifd-$side.log" 2>&1 &
        VPN_PIDS+=($!)
    done
    for side in a b; do
        wait_for 100 test -S "$WORK/ipsecifd-$side.sock" || die "ipsecifd ($side) did not start"
    done
    for side in a b; do
        ctl $side ifconfig ipsec0 create
        ctl $side ifconfig ipsec0 -link2
        ctl $side ifconfig ipsec0 mtu "$MTU"
    done
    ctl a ifconfig ipsec0 tunnel 198.51.100.1 198.51.100.2
    ctl b ifconfig ipsec0 tunnel 198.51.100.2 198.51.100.1
    ctl a ifconfig ipsec0 inet 203.0.113.1/32 203.0.113.2
    ctl b ifconfig ipsec0 inet 203.0.113.2/32 203.0.113.1
    ctl a ifconfig ipsec0 up
    ctl b ifconfig ipsec0 up
    uids() {
        ctl "$1" ifconfig ipsec0 | sed -nE 's/.*unique id: v4 out ([0-9]+) in ([0-9]+),.*/\1 \2/p'
    }
    read -r a_out a_in <<<"$(uids a)"
    read -r b_out b_in <<<"$(uids b)"
    if [ -z "$a_in" ] || [ -z "$b_in" ]; then
        die "ipsecifd: no unique ids in 'ifconfig ipsec0'"
    fi
    # AES-128-GCM-16: 16 key bytes and a 4-byte salt.
    k_ab=$(key 20)
    k_ba=$(key 20)
    ctl a setkey -c <<EOF
add 198.51.100.1 198.51.100.2 esp 0x1001 -m transport -u $a_out -r 8 -E aes-gcm-16 0x$k_ab;
add 198.51.100.2 198.51.100.1 esp 0x2001 -m transport -u $a_in -r 8 -E aes-gcm-16 0x$k_ba;
EOF
    ctl b setkey -c <<EOF
add 198.51.100.1 198.51.100.2 esp 0x1001 -m transport -u $b_in -r 8 -E aes-gcm-16 0x$k_ab;
add 198.51.100.2 198.51.100.1 esp 0x2001 -m transport -u $b_out -r 8 -E aes-gcm-16 0x$k_ba;
EOF
    IPSECIFD_MTU=$(mtu_of ipsec0)
    IPSECIFD_CRYPTO=$(sed -nE 's/.*; crypto ([a-z0-9]+);.*/\1/p' "$WORK/ipsecifd-a.log" | head -n 1)
}

stop_ipsecifd() {
    ctl a ifconfig ipsec0 destroy >/dev/null 2>&1 || true
    ctl b ifconfig ipsec0 destroy >/dev/null 2>&1 || true
    stop_vpn
}

# ---- strongSwan (charon with kernel-libipsec) ----

# sh -c "$PRIVATE_RUN" sh DIR CMD...: in a mount namespace of its own (unshare),
# CMD with DIR as /run
# (and so /var/run), so that its pid file and sockets stay in WORK.
# shellcheck disable=SC2016 # expanded by that sh, not here
PRIVATE_RUN='mount --bind "$1" /run && shift && exec "$@"'

ss_swanctl() { # ss_swanctl a|b ARGS...
    local side=$1
    shift
    STRONGSWAN_CONF=$WORK/ss-$side/strongswan.conf SWANCTL_DIR=$WORK/ss-$side \
        swanctl "$@" --uri "unix://$WORK/ss-$side/charon.vici"
}

start_strongswan() {
    local side l r lt rt li ri psk
    psk=$(key 32)
    for side in a b; do
        if [ $side = a ]; then
            l=198.51.100.1 r=198.51.100.2 lt=203.0.113.17 rt=203.0.113.18 li=a ri=b
        else
            l=198.51.100.2 r=198.51.100.1 lt=203.0.113.18 rt=203.0.113.17 li=b ri=a
        fi
        mkdir -p "$WORK/ss-$side/run"
        # The inner address: a local one the routes into the TUN device take as source.
        ip -n "$(nsof $side)" addr add "$lt/32" dev lo
        cat >"$WORK/ss-$side/strongswan.conf" <<EOF
charon {
    load = random nonce openssl kdf kernel-libipsec kernel-netlink socket-default vici
    plugins {
        vici {
            socket = unix://$WORK/ss-$side/charon.vici
        }
    }
    filelog {
        charon {
            path = $WORK/strongswan-$side.log
            default = 1
            time_format = %T
        }
    }
    syslog {
        daemon {
            default = -1
        }
    }
}
swanctl {
    load = pem
}
EOF
        cat >"$WORK/ss-$side/swanctl.conf" <<EOF
connections {
    bench {
        version = 2
        local_addrs = $l
        remote_addrs = $r
        encap = yes
        proposals = aes128gcm16-prfsha256-ecp256
        local {
            auth = psk
            id = $li
        }
        remote {
            auth = psk
            id = $ri
        }
        children {
            bench {
                mode = tunnel
                local_ts = $lt/32
                remote_ts = $rt/32
                esp_proposals = aes128gcm16
            }
        }
    }
}
secrets {
    ike-bench {
        id-a = a
        id-b = b
        secret = 0x$psk
    }
}
EOF
        ip netns exec "$(nsof $side)" unshare --mount --propagation private \
            env STRONGSWAN_CONF="$WORK/ss-$side/strongswan.conf" \
            sh -c "$PRIVATE_RUN" sh "$WORK/ss-$side/run" "$CHARON" \
            >"$WORK/strongswan-$side.out.log" 2>&1 &
        VPN_PIDS+=($!)
    done
    for side in a b; do
        wait_for 100 test -S "$WORK/ss-$side/charon.vici" || die "strongSwan charon ($side) did not start"
        ss_swanctl $side --load-all --noprompt --file "$WORK/ss-$side/swanctl.conf" \
            >>"$WORK/strongswan-swanctl.log" 2>&1 || die "swanctl ($side) could not load the configuration"
    done
    ss_swanctl a --initiate --child bench --timeout 15 >>"$WORK/strongswan-swanctl.log" 2>&1 ||
        die "strongSwan: the IKE_SA or CHILD_SA was not established"
    # The plugin's TUN device has 1400 already; make sure of it.
    ip -n "$NS_A" link set ipsec0 mtu "$MTU"
    ip -n "$NS_B" link set ipsec0 mtu "$MTU"
    STRONGSWAN_MTU=$(mtu_of ipsec0)
}

stop_strongswan() {
    stop_vpn
    ip -n "$NS_A" addr del 203.0.113.17/32 dev lo 2>/dev/null || true
    ip -n "$NS_B" addr del 203.0.113.18/32 dev lo 2>/dev/null || true
}

# ---- wireguard-go ----

wg_in() { # wg_in PID ARGS...: wg in that daemon's network and mount namespaces
    local p=$1
    shift
    nsenter -t "$p" -m -n wg "$@"
}

start_wireguard() {
    local side p lt rt peer other
    (
        umask 077
        for side in a b; do
            wg genkey >"$WORK/wg-$side.key"
            wg pubkey <"$WORK/wg-$side.key" >"$WORK/wg-$side.pub"
        done
    )
    for side in a b; do
        mkdir -p "$WORK/wg-$side-run"
        ip netns exec "$(nsof $side)" unshare --mount --propagation private \
            env LOG_LEVEL=error sh -c "$PRIVATE_RUN" sh "$WORK/wg-$side-run" \
            wireguard-go -f wg0 >"$WORK/wireguard-go-$side.log" 2>&1 &
        VPN_PIDS+=($!)
    done
    for side in a b; do
        wait_for 100 test -S "$WORK/wg-$side-run/wireguard/wg0.sock" ||
            die "wireguard-go ($side) did not start"
    done
    # side, its daemon, inner address, peer's inner and outer address, peer
    while read -r side p lt rt peer other; do
        wg_in "$p" set wg0 listen-port 51820 private-key "$WORK/wg-$side.key" \
            peer "$(cat "$WORK/wg-$other.pub")" endpoint "$peer:51820" allowed-ips "$rt/32" ||
            die "wireguard-go ($side): wg set failed"
        ip -n "$(nsof "$side")" addr add "$lt/32" peer "$rt/32" dev wg0
        ip -n "$(nsof "$side")" link set wg0 mtu "$MTU" up
    done <<EOF
a ${VPN_PIDS[0]} 203.0.113.33 203.0.113.34 198.51.100.2 b
b ${VPN_PIDS[1]} 203.0.113.34 203.0.113.33 198.51.100.1 a
EOF
    WG_MTU=$(mtu_of wg0)
}

# ---- Run ----

echo "compare.sh: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr)"
echo "  strongSwan $(dpkg-query -W -f='${Version}' strongswan-charon 2>/dev/null || echo '?')" \
    "(kernel-libipsec), wireguard-go $(dpkg-query -W -f='${Version}' wireguard-go 2>/dev/null ||
        echo '?'), iperf3 $(iperf3 --version | sed -nE '1s/^iperf ([^ ]+).*/\1/p')"

reach bare 198.51.100.2
measure bare 198.51.100.2

STAGE=ipsecifd
start_ipsecifd
reach ipsecifd 203.0.113.2
measure ipsecifd 203.0.113.2 "${VPN_PIDS[@]}"
stop_ipsecifd

STAGE=strongswan
start_strongswan
reach strongSwan 203.0.113.18
measure strongswan 203.0.113.18 "${VPN_PIDS[@]}"
stop_strongswan

STAGE=wireguard-go
start_wireguard
reach wireguard-go 203.0.113.34
measure wireguard 203.0.113.34 "${VPN_PIDS[@]}"
stop_vpn

echo
echo "ipsecifd: crypto ${IPSECIFD_CRYPTO:-?}, $THREADS thread(s), raw ESP; strongSwan: ESP in UDP;" \
    "tunnel MTU: ipsecifd ${IPSECIFD_MTU:-?}, strongSwan ${STRONGSWAN_MTU:-?}," \
    "wireguard-go ${WG_MTU:-?}; veth 1500;" \
    "load average now $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$ROOT/bench/compare_report.py" "$RESULTS" "$UDP_SMALL" "$UDP_LARGE" "$DURATION"
