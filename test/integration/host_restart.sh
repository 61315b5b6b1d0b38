#!/usr/bin/env bash
# ipsecifd -H across a restart: the state file keeps the policies and the
# sysctls (never the keys), so a restarted daemon with nothing loaded does
# not let host traffic out in clear.
#
# Two hosts A and B on a veth pair (198.51.100.0/24, 2001:db8:ff::/64),
# each running `ipsecifd -H`, ESP transport require policies and SAs by
# `ipsecifctl setkey -c`, a sysctl changed on A. Then:
#   - traffic passes protected; A's state file is 0600, holds the policies
#     and the sysctl and not one key;
#   - a UDP socket on port 500 with racoon's per-socket bypass (under the
#     preload library) sends to B in clear, as bypass says;
#   - kill -9 of A's daemon, a new one started with nothing loaded: it
#     lists the same policies and the sysctl and no SA; pings to B fail,
#     out_nosa and ACQUIRE grow, a PF_KEY listener gets the ACQUIREs, the
#     capture holds no cleartext (and no ESP); the per-socket policy is
#     not restored (the log says to restart the program), so the same
#     socket's datagrams now follow the require policy and are dropped;
#   - cleartext from B (its policies flushed) is dropped by A's table
#     inet ipsecif_host (its policy rules count it, A's stack sees no echo
#     request);
#   - SAs added again by hand, no policy: pings and TCP pass with ESP only;
#   - a state file changed by one byte, one cut short, one of another
#     version, one with loose permissions, and none at all while ipsech0
#     was kept: each is refused (kept as .bad), the daemon starts with
#     def_policy 0 for both families, no policy: A's pings fail and
#     nothing leaves in clear; cleartext from B is dropped;
#   - -F starts fresh: no policies, def_policy 1, and (the control that
#     the capture check sees cleartext) the pings leave in clear;
#   - -x removes the state file with the device.
#
# usage: host_restart.sh IPSECIFD IPSECIFCTL PRELOAD_SO
# Needs root, network namespaces, tcpdump, nft and python3 (exit 77,
# "skipped", otherwise).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")
PRELOAD=$(readlink -f "$3")

NETNS_TAG=hrst
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

# shellcheck source=host_lib.sh
. "$(dirname "$0")/host_lib.sh"
host_prereqs tcpdump nft

STATE=$WORK/A.state

# restart_a [FLAGS...]: A's daemon stopped (SIGTERM, if running) and started
# again; LOGNEW is where its log starts.
restart_a() {
    if [ -n "$PIDA" ]; then
        kill -TERM "$PIDA"
        wait "$PIDA" || fail "A's daemon exited $? on SIGTERM"
        PIDA=
    fi
    LOGNEW=$(($(wc -l <"$WORK/A.log") + 1))
    start_daemon A "$NSA" "$@"
}
newlog() {
    tail -n +"$LOGNEW" "$WORK/A.log"
}

# no_pings NS ADDR...: 2 echoes to each, none answered.
no_pings() {
    local ns=$1 a
    shift
    for a in "$@"; do
        in_ns "$ns" ping -c 2 -i 0.2 -W 1 "$a" >/dev/null 2>&1 && fail "ping $a from $ns answered"
    done
    return 0
}
npols() {
    ctl "$1" setkey -DP | grep -c 'spid=' || true
}
sysctl_of() {
    ctl A sysctl "$1" | awk '{ print $3 }'
}

sas() {
    cat <<EOF
add $A4 $B4 esp 0x1001 -m transport -E aes-gcm-16 $KG1;
add $B4 $A4 esp 0x1002 -m transport -E aes-gcm-16 $KG2;
add $A6 $B6 esp 0x1003 -m transport -E aes-gcm-16 $KG3;
add $B6 $A6 esp 0x1004 -m transport -E aes-gcm-16 $KG4;
EOF
}
policies() {
    local me4=$A4 peer4=$B4 me6=$A6 peer6=$B6
    if [ "$1" = B ]; then
        me4=$B4 peer4=$A4 me6=$B6 peer6=$A6
    fi
    cat <<EOF
spdadd $me4 $peer4 any -P out ipsec esp/transport//require;
spdadd $me6 $peer6 any -P out ipsec esp/transport//require;
spdadd $peer4 $me4 any -P in ipsec esp/transport//require;
spdadd $peer6 $me6 any -P in ipsec esp/transport//require;
EOF
}

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
head -c 262144 /dev/urandom >"$WORK/data"
DATA_SUM="262144 $(sha256sum "$WORK/data" | cut -d' ' -f1)"
xfer() {
    local addr=$1 out=$WORK/xfer.$2 spid
    in_ns "$NSB" "$PY" "$WORK/xfer.py" server "$addr" "$2" "$out" &
    spid=$!
    BG="$BG $spid"
    for _ in $(seq 50); do
        [ -e "$out.ready" ] && break
        sleep 0.1
    done
    in_ns "$NSA" timeout 40 "$PY" "$WORK/xfer.py" client "$addr" "$2" "$WORK/data" ||
        fail "TCP transfer to $addr"
    wait "$spid" || fail "TCP server at $addr"
    [ "$(cat "$out")" = "$DATA_SUM" ] || fail "TCP transfer to $addr: got $(cat "$out")"
}

# A's stack: echo requests taken in; A's table: packets dropped by policy.
in_echos() {
    in_ns "$NSA" awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 }
        else v4 = $(c["InEchos"]) } END { print v4 }' /proc/net/snmp
    in_ns "$NSA" awk '$1 == "Icmp6InEchos" { print $2 }' /proc/net/snmp6
}
nft_drops() {
    in_ns "$NSA" nft list chain inet ipsecif_host prerouting |
        awk -v c="$1" 'index($0, "comment \"" c) && index($0, "drop") {
            for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'
}
# inbound_dropped COMMENT: B sends cleartext pings to A (B without policies);
# A's table drops them by the rules whose comment starts with COMMENT.
inbound_dropped() {
    local e0 d0 d
    ctl B setkey -FP
    e0=$(in_echos)
    d0=$(nft_drops "$1")
    no_pings "$NSB" "$A4" "$A6"
    d=$(($(nft_drops "$1") - d0))
    echo "  A's table dropped $d cleartext packets from B ($1 rules)"
    [ "$d" -ge 4 ] || fail "A's table dropped only $d cleartext packets by its $1 rules"
    [ "$(in_echos)" = "$e0" ] || fail "A's stack took in cleartext echo requests"
    policies B | ctl B setkey -c
}

# ---- Set-up ----

step "namespaces, veth on 198.51.100.0/24 and 2001:db8:ff::/64, ipsecifd -H on both"
veth_pair
start_daemon A "$NSA"
start_daemon B "$NSB"
grepq 'no state file .*: a fresh start' "$WORK/A.log" || fail "A's first start was not fresh"
[ "$(stat -c %a "$STATE")" = 600 ] || fail "state file mode $(stat -c %a "$STATE")"

step "ESP transport policies and SAs, a sysctl changed on A: protected traffic"
for side in A B; do
    { sas; policies "$side"; } | ctl "$side" setkey -c
done
# setkey's PF_KEY messages came in a burst, which the daemon writes at
# most once per 50 ms: the last change is in the file soon after, with no
# control request (which writes before its reply) to push it.
sleep 0.3
FILEPOL=$(grep -c '^policy ' "$STATE" || true)
ctl A sysctl net.inet6.ipsec6.esp_trans_deflev=2 >/dev/null
NPOL=$(npols A)
[ "$NPOL" -ge 4 ] || fail "A has $NPOL policies"
[ "$FILEPOL" -eq "$NPOL" ] || fail "the state file held $FILEPOL of $NPOL policies after the burst"
capture_start before
pings "$NSA" "$B4" "$B6"
xfer "$B4" 5001
capture_stop
echo "before the restart: $(count esp) ESP packets, $(count "$LEAK") in clear"
[ "$(count esp)" -ge 150 ] || fail "little ESP before the restart"
no_leak "before the restart"
cat "$STATE"
[ "$(grep -c '^policy ' "$STATE")" -eq "$NPOL" ] || fail "the state file lacks policies"
grepq -x 'sysctl net.inet6.ipsec6.esp_trans_deflev 2' "$STATE" || fail "the sysctl is not in the state file"
for k in $KG1 $KG2 $KG3 $KG4; do
    grepq -i "${k#0x}" "$STATE" && fail "a key is in the state file"
    grepq -i "${k:2:16}" "$STATE" && fail "part of a key is in the state file"
done

step "racoon's bypass on a UDP socket (port 500) through the preload library"
# ike.py ADDR PEER DIR: a UDP socket with in and out bypass bound to
# ADDR:500; DIR/ready once set up, then one datagram to PEER:500 for each
# DIR/go.N that appears (N = 1, 2 ...), DIR/sent.N after it.
cat >"$WORK/ike.py" <<'EOF'
import os
import socket
import struct
import sys
import time

addr, peer, d = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for direction in (1, 2):  # in, out: sadb_x_policy with IPSEC_POLICY_BYPASS
    s.setsockopt(socket.IPPROTO_IP, 16, struct.pack("<HHHBBII", 2, 18, 4, direction, 0, 0, 0))
s.bind((addr, 500))
open(os.path.join(d, "ready"), "w").close()
n = 1
end = time.time() + 120
while time.time() < end:
    if os.path.exists(os.path.join(d, "go.%d" % n)):
        try:
            s.sendto(b"ike %d" % n, (peer, 500))
        except OSError:
            pass
        open(os.path.join(d, "sent.%d" % n), "w").close()
        n += 1
    time.sleep(0.05)
EOF
mkdir "$WORK/ike"
in_ns "$NSA" env LD_PRELOAD="$PRELOAD" IPSECIF_PFKEY_SOCKET="$WORK/A.pfkey" \
    "$PY" "$WORK/ike.py" "$A4" "$B4" "$WORK/ike" >"$WORK/ike.log" 2>&1 &
IKEPID=$!
BG="$BG $IKEPID"
for _ in $(seq 50); do
    [ -e "$WORK/ike/ready" ] && break
    sleep 0.1
done
[ -e "$WORK/ike/ready" ] || fail "the IKE socket was not set up: $(cat "$WORK/ike.log")"
grepq -x 'sockets 1' "$STATE" || fail "the state file does not count the socket"
# ike_send N: datagram N, sent once the program says so.
ike_send() {
    touch "$WORK/ike/go.$1"
    for _ in $(seq 50); do
        [ -e "$WORK/ike/sent.$1" ] && return 0
        sleep 0.1
    done
    fail "the IKE socket did not send datagram $1"
}
capture_start ike-bypass
ike_send 1
capture_stop
echo "bypass: $(count "udp port 500") IKE datagrams in clear"
[ "$(count "udp and src host $A4 and dst host $B4 and port 500")" -ge 1 ] ||
    fail "the bypass socket's datagram did not leave (control)"

step "kill -9 of A's daemon; a new one with nothing loaded restores policies, not SAs"
kill -KILL "$PIDA"
wait "$PIDA" 2>/dev/null || true
PIDA=
LOGNEW=$(($(wc -l <"$WORK/A.log") + 1))
start_daemon A "$NSA"
newlog | grepq "state file .*: $NPOL policies and 1 sysctls restored" || fail "no restore in A's log"
newlog | grepq "1 sockets had per-socket policies, which are not restored" ||
    fail "no word in A's log about the per-socket policy"
[ "$(npols A)" -eq "$NPOL" ] || fail "A lists $(npols A) policies after the restart, not $NPOL"
[ "$(sysctl_of net.inet6.ipsec6.esp_trans_deflev)" = 2 ] || fail "the sysctl was not restored"
[ "$(sysctl_of net.inet.ipsec.def_policy)" = 1 ] || fail "def_policy changed"
ctl A setkey -D | grepq 'esp mode=' && fail "an SA came back"

step "no SA after the restart: dropped, counted, ACQUIRE to a PF_KEY listener, nothing in clear"
cat >"$WORK/km.py" <<'EOF'
import socket
import struct
import sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.settimeout(10)
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
            if etype == 6:  # SADB_EXT_ADDRESS_DST
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
capture_start nosa
no_pings "$NSA" "$B4" "$B6"
ike_send 2
capture_stop
[ "$(count "udp port 500")" -eq 0 ] || fail "the socket's bypass outlived the daemon"
nosa=$(($(stat_of A "outbound packets with no SA available") - nosa0))
echo "after the restart: out_nosa +$nosa, $(count "$LEAK") in clear, $(count esp) ESP"
[ "$nosa" -ge 4 ] || fail "out_nosa grew by $nosa only"
no_leak "after the restart, no SA"
[ "$(count esp)" -eq 0 ] || fail "ESP on the link without an SA"
sleep 0.3
kill "$KMPID" 2>/dev/null || true
wait "$KMPID" 2>/dev/null || true
grepq -x "$B4" "$WORK/acquires.txt" || fail "no PF_KEY ACQUIRE for $B4"
grepq -x "$B6" "$WORK/acquires.txt" || fail "no PF_KEY ACQUIRE for $B6"
kill "$IKEPID" 2>/dev/null || true
wait "$IKEPID" 2>/dev/null || true

step "inbound cleartext after the restart: dropped by A's table"
inbound_dropped "policy in"

step "SAs again by hand, no policy re-added: protected traffic"
ctl B setkey -F
sas | ctl B setkey -c
sas | ctl A setkey -c
[ "$(npols A)" -eq "$NPOL" ] || fail "A's policies changed"
capture_start after
pings "$NSA" "$B4" "$B6"
xfer "$B6" 5002
capture_stop
echo "after the restart with SAs: $(count esp) ESP packets, $(count "$LEAK") in clear"
[ "$(count esp)" -ge 150 ] || fail "little ESP after the restart"
no_leak "after the restart with SAs"

# refused WHAT: A restarted on a bad state file; the documented fail-closed start.
refused() {
    local what=$1
    shift
    restart_a "$@"
    newlog | grepq "state file $STATE: .*starting fail closed: def_policy 0" ||
        fail "$what: no fail-closed start in A's log"
    newlog | grep "state file $STATE:" | head -1
    [ "$(sysctl_of net.inet.ipsec.def_policy)" = 0 ] || fail "$what: IPv4 def_policy is not 0"
    [ "$(sysctl_of net.inet6.ipsec6.def_policy)" = 0 ] || fail "$what: IPv6 def_policy is not 0"
    [ "$(sysctl_of net.inet6.ipsec6.esp_trans_deflev)" = 1 ] || fail "$what: half applied (sysctl)"
    [ "$(npols A)" -eq 0 ] || fail "$what: half applied ($(npols A) policies)"
    # With no policy, IPsec is not used and def_policy would not be asked.
    [ "$(sysctl_of net.inet.ipsec.enabled)" = 2 ] || fail "$what: enabled is not 2"
    grepq -x 'sysctl net.inet.ipsec.def_policy 0' "$STATE" ||
        fail "$what: the new state file does not keep def_policy 0"
    grepq -x 'sysctl net.inet.ipsec.enabled 2' "$STATE" ||
        fail "$what: the new state file does not keep enabled 2"
    capture_start "refused-$what"
    no_pings "$NSA" "$B4" "$B6"
    capture_stop
    no_leak "$what"
    [ "$(count esp)" -eq 0 ] || fail "$what: ESP on the link"
}

# good_state: A's daemon runs with the policies and SAs of above and a good state file.
good_state() {
    restart_a -F
    { sas; policies A; } | ctl A setkey -c
    ctl A sysctl net.inet6.ipsec6.esp_trans_deflev=2 >/dev/null
    kill -TERM "$PIDA"
    wait "$PIDA" || fail "A's daemon exited $? on SIGTERM"
    PIDA=
    grepq '^policy ' "$STATE" || fail "no policies in the state file"
}

step "a state file changed by one byte: refused whole, kept as .bad, def_policy 0"
good_state
sed -i "0,/$B4/s/$B4/198.51.100.3/" "$STATE"
cp "$STATE" "$WORK/changed.state"
refused changed
cmp -s "$WORK/changed.state" "$STATE.bad" || fail "the refused file was not kept as .bad"
inbound_dropped "def_policy"

step "a state file cut short, of another version, group-readable, or missing: refused"
good_state
head -c $(($(stat -c %s "$STATE") - 20)) "$STATE" >"$WORK/cut" && cat "$WORK/cut" >"$STATE"
refused cut
newlog | grepq "no newline at its end: the file is cut short" || fail "no 'cut short' in the log"
good_state
sed -i 's/^ipsecifd-state 1$/ipsecifd-state 9/' "$STATE"
refused version
newlog | grepq "format version '9'; this daemon reads version 1" || fail "no version error in the log"
good_state
chmod 0640 "$STATE"
refused mode
good_state
rm -f "$STATE"
refused missing
newlog | grepq "ipsech0 was kept by an earlier run, but its state file is missing" ||
    fail "no 'missing' in the log"

step "-F starts fresh: no policies, def_policy 1 (control: the capture sees cleartext)"
restart_a -F
newlog | grepq -- "-F: state file $STATE removed" || fail "-F did not remove the state file"
[ "$(npols A)" -eq 0 ] || fail "-F kept policies"
[ "$(sysctl_of net.inet.ipsec.def_policy)" = 1 ] || fail "-F kept def_policy 0"
[ "$(sysctl_of net.inet.ipsec.enabled)" = 1 ] || fail "-F kept enabled 2"
ctl B setkey -FP
capture_start fresh
pings "$NSA" "$B4" "$B6"
capture_stop
echo "-F: $(count "$LEAK") cleartext packets"
[ "$(count "$LEAK")" -ge 6 ] || fail "the capture check missed cleartext pings"

step "-x removes the state file with the device"
restart_a -x
[ -f "$STATE" ] || fail "no state file while the daemon runs"
kill -TERM "$PIDA"
wait "$PIDA" || fail "A's daemon exited $? on SIGTERM"
PIDA=
[ -e "$STATE" ] && fail "the state file outlived -x"
in_ns "$NSA" ip link show ipsech0 >/dev/null 2>&1 && fail "ipsech0 outlived -x"
echo "PASS"
