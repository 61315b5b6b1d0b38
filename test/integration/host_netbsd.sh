#!/usr/bin/env bash
# NetBSD's ipsec(4) tests (tests/net/ipsec) replayed against ipsecifd -H,
# the example router carrying its network namespace's own and forwarded
# traffic through the library's SPD and SADB. What each NetBSD test
# asserts, and what of it is checked here:
#
# t_ipsec_esp_keys, t_ipsec_ah_keys: every algorithm takes its valid key
#   lengths (the SA is listed, then deleted) and refuses the others (no
#   SA); here for every algorithm the router offers, through setkey -c and
#   through raw PF_KEY SADB_ADD messages to the daemon (EINVAL), then
#   traffic in transport mode with one valid key of each (ESP or AH seen
#   on the wire both ways, never the cleartext).
# t_ipsec_sysctl: net.inet.ipsec.enabled is 1 and net.inet.ipsec.used 0
#   (and the net.inet6.ipsec6 names the same), an SA leaves used at 0, an
#   IPv4 or IPv6 policy makes it 1; here also used is read only and enabled
#   takes 0, 1, 2 (0 refused while a policy exists), and what they do to
#   traffic: while used is 0 def_policy 0 drops nothing, enabled 2 makes
#   it apply with no policy, used stays 1 once set, enabled 0 ends it, and
#   a policy added under enabled 0 applies only once enabled is 1. Then the
#   other sysctls, with NetBSD's rules for values (deflev 1 or 2,
#   def_policy 0 or 1) and their meaning: a policy at level default follows
#   esp_trans_deflev, esp_net_deflev, ah_trans_deflev and ah_net_deflev of
#   its family (1 use: without an SA it goes in clear; 2 require: dropped,
#   counted, ACQUIRE); def_policy decides traffic no policy matches (0
#   drop, 1 pass), each direction and each family on its own.
# t_ipsec_sockopt: per-socket policies (setsockopt IP_IPSEC_POLICY, here
#   under libipsecif_pfkey_preload.so on UDP sockets, as NetBSD uses ping
#   -E): "out ipsec esp/transport//require" sends ESP while the answer
#   comes back in clear; adding "in ... require" refuses that clear
#   answer; once the peer protects it too, it passes. And racoon's case:
#   an SPD that requires ESP for everything, IKE sockets on port 500 with
#   bypass both ways still exchange cleartext, another socket is dropped
#   and an ACQUIRE raised.
# t_ipsec_misc: SA lifetimes (SAs disappear, traffic then stops), update
#   of an SA and of a policy, getspi then update, several SAs for one pair
#   (net.key.prefered_oldsa 0: the newest is used, deleting it falls back
#   to the one before; 1: the oldest is used throughout; each seen on the
#   wire by its SPI), no SA (traffic stops), a policy to 0.0.0.0/0 with SAs
#   per peer (only peers with SAs reachable, the policy unchanged); and
#   spddelete ends the protection.
# t_ipsec_tunnel_odd: tunnel mode between two gateways forwarding for two
#   hosts, IPv4 inside IPv6 and IPv6 inside IPv4, ESP and AH: the hosts
#   reach each other and only ESP or AH between the gateways' outer
#   addresses crosses the link.
#
# Four network namespaces: L - A - B - R, ipsecifd -H in A and B.
#
# usage: host_netbsd.sh IPSECIFD IPSECIFCTL PRELOAD_SO
# Needs root, network namespaces and an ipsecifd with -H (exit 77,
# "skipped", otherwise; without -H the checks that need no traffic run
# first).
set -euo pipefail

IPSECIFD=$(readlink -f "$1")
IPSECIFCTL=$(readlink -f "$2")
PRELOAD=$(readlink -f "$3")
SOCKPY=$(dirname "$(readlink -f "$0")")/host_netbsd_sock.py

NETNS_TAG=hnb
# shellcheck source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

for tool in tcpdump python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: needs $tool"
        exit 77
    fi
done
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

NSL=$ID-l
NSR=$ID-r
BGPIDS=()

# The library's cleanup runs last, with the exit status it was called with
# (errexit off: a failing step here must not skip it).
more_cleanup() {
    local rc=$? p
    set +e
    for p in "${BGPIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    ip netns del "$NSL" 2>/dev/null
    ip netns del "$NSR" 2>/dev/null
    (exit "$rc")
    cleanup
}
trap more_cleanup EXIT

HOST=0
if grepq -- '\[-H' <<<"$("$IPSECIFD" -h 2>&1 || true)"; then
    HOST=1
fi

# ---- namespaces ----
#
#   L veth-l 203.0.113.2/26 2001:db8:a::2    A veth-al 203.0.113.1/26 2001:db8:a::1
#   A veth-ab 198.51.100.1/24 2001:db8:1::1  B veth-ba 198.51.100.2 (.3) 2001:db8:1::2
#   B veth-br 203.0.113.65/26 2001:db8:b::1  R veth-r 203.0.113.66/26 2001:db8:b::2
step "namespaces"
if ! ip netns add "$NSA" 2>/dev/null; then
    echo "SKIP: cannot make network namespaces"
    exit 77
fi
ip netns add "$NSB"
ip netns add "$NSL"
ip netns add "$NSR"
ip link add veth-ab netns "$NSA" type veth peer name veth-ba netns "$NSB"
ip link add veth-l netns "$NSL" type veth peer name veth-al netns "$NSA"
ip link add veth-r netns "$NSR" type veth peer name veth-br netns "$NSB"
addr() {
    in_ns "$1" ip addr add "$3" dev "$2" ${4:+nodad}
}
for ns in "$NSA" "$NSB" "$NSL" "$NSR"; do
    in_ns "$ns" ip link set lo up
done
addr "$NSA" veth-ab 198.51.100.1/24
addr "$NSA" veth-ab 2001:db8:1::1/64 v6
addr "$NSB" veth-ba 198.51.100.2/24
addr "$NSB" veth-ba 198.51.100.3/24
addr "$NSB" veth-ba 2001:db8:1::2/64 v6
addr "$NSL" veth-l 203.0.113.2/26
addr "$NSL" veth-l 2001:db8:a::2/64 v6
addr "$NSA" veth-al 203.0.113.1/26
addr "$NSA" veth-al 2001:db8:a::1/64 v6
addr "$NSR" veth-r 203.0.113.66/26
addr "$NSR" veth-r 2001:db8:b::2/64 v6
addr "$NSB" veth-br 203.0.113.65/26
addr "$NSB" veth-br 2001:db8:b::1/64 v6
in_ns "$NSA" ip link set veth-ab up
in_ns "$NSA" ip link set veth-al up
in_ns "$NSB" ip link set veth-ba up
in_ns "$NSB" ip link set veth-br up
in_ns "$NSL" ip link set veth-l up
in_ns "$NSR" ip link set veth-r up
in_ns "$NSL" ip route add default via 203.0.113.1
in_ns "$NSL" ip -6 route add default via 2001:db8:a::1
in_ns "$NSR" ip route add default via 203.0.113.65
in_ns "$NSR" ip -6 route add default via 2001:db8:b::1
in_ns "$NSA" ip route add 203.0.113.64/26 via 198.51.100.2
in_ns "$NSA" ip -6 route add 2001:db8:b::/64 via 2001:db8:1::2
in_ns "$NSB" ip route add 203.0.113.0/26 via 198.51.100.1
in_ns "$NSB" ip -6 route add 2001:db8:a::/64 via 2001:db8:1::1
for ns in "$NSA" "$NSB"; do
    in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
done

step "daemons$([ "$HOST" -eq 1 ] && echo ' (-H)')"
HFLAG=()
[ "$HOST" -eq 1 ] && HFLAG=(-H)
ip netns exec "$NSA" "$IPSECIFD" -f "${HFLAG[@]}" -l debug -s "$WORK/A.sock" \
    -k "$WORK/A.pfkey" -p "$WORK/A.pid" </dev/null >"$WORK/A.log" 2>&1 &
PIDA=$!
ip netns exec "$NSB" "$IPSECIFD" -f "${HFLAG[@]}" -l debug -s "$WORK/B.sock" \
    -k "$WORK/B.pfkey" -p "$WORK/B.pid" </dev/null >"$WORK/B.log" 2>&1 &
PIDB=$!
for _ in $(seq 50); do
    if [ -S "$WORK/A.sock" ] && [ -S "$WORK/B.sock" ] && [ -S "$WORK/A.pfkey" ] &&
        [ -S "$WORK/B.pfkey" ]; then
        break
    fi
    sleep 0.1
done
ctl A stats >/dev/null && ctl B stats >/dev/null || fail "daemons did not start"

# ---- helpers ----

# key BITS: a key of BITS/8 letters 'a' in quotes (nothing for 0), as NetBSD's tests make them.
key() {
    local n=$(($1 / 8)) k=
    while [ "$n" -gt 0 ]; do
        k=${k}a
        n=$((n - 1))
    done
    [ -z "$k" ] || echo "\"$k\""
}

# hexkey BYTES: a key of BYTES bytes 0xaa in hex.
hexkey() {
    local n=$1 k=
    while [ "$n" -gt 0 ]; do
        k=${k}aa
        n=$((n - 1))
    done
    echo "$k"
}

# sk SIDE: a setkey script from stdin on that side; it must succeed.
sk() {
    ctl "$1" setkey -c >"$WORK/sk.out" 2>&1 || {
        cat "$WORK/sk.out"
        fail "setkey on $1"
    }
}

# both: the same setkey script (stdin) on A and B.
both() {
    local s
    s=$(cat)
    sk A <<<"$s"
    sk B <<<"$s"
}

flush() {
    local side
    for side in A B; do
        ctl "$side" setkey -F >/dev/null
        ctl "$side" setkey -FP >/dev/null
    done
}

# stat SIDE TEXT: a counter of `stats`, by its text.
stat() {
    ctl "$1" stats | awk -v t="$2" '{ n = $1; sub(/^ *[0-9]+ /, ""); if ($0 == t) print n }'
}

# grows SIDE TEXT BEFORE: the counter is above BEFORE.
grows() {
    local now
    now=$(stat "$1" "$2")
    [ "$now" -gt "$3" ] || fail "$1: '$2' stayed at $now"
}

# reach NS ARGS...: one ping must be answered; unreach: must not be.
reach() {
    local ns=$1
    shift
    in_ns "$ns" ping -n -c 1 -W 2 "$@" >/dev/null 2>&1 || fail "no answer: ping $* (in $ns)"
}
unreach() {
    local ns=$1
    shift
    if in_ns "$ns" ping -n -c 1 -W 1 "$@" >/dev/null 2>&1; then
        fail "answered: ping $* (in $ns)"
    fi
}

# cap_start NAME NS IF: tcpdump in the background; cap_stop NAME: its text in $WORK/NAME.txt.
declare -A CAP
cap_start() {
    local i
    # Not through in_ns: $! must be tcpdump itself (ip netns exec execs it).
    ip netns exec "$2" tcpdump -i "$3" -nn -l -U >"$WORK/$1.txt" 2>"$WORK/$1.err" &
    CAP[$1]=$!
    BGPIDS+=($!)
    for i in $(seq 50); do
        grepq 'listening on' "$WORK/$1.err" && return 0
        sleep 0.05
    done
    fail "tcpdump did not start"
}
cap_stop() {
    sleep 0.2
    kill "${CAP[$1]}" 2>/dev/null || true
    wait "${CAP[$1]}" 2>/dev/null || true
}
# seen NAME REGEX / unseen NAME REGEX: the capture has (not) a line matching.
seen() {
    grepq -E "$2" "$WORK/$1.txt" || {
        cat "$WORK/$1.txt"
        fail "capture $1: no line matches '$2'"
    }
}
unseen() {
    if grepq -E "$2" "$WORK/$1.txt"; then
        grep -E "$2" "$WORK/$1.txt" | head -5
        fail "capture $1: a line matches '$2'"
    fi
}
# Cleartext ICMP: an echo that no ESP or AH carries.
CLEAR='^[^(]*: ICMP6?,? echo'

# sadb_gone: both sides list no SA within 6 s.
sadb_gone() {
    for _ in $(seq 30); do
        if ctl A setkey -D | grepq 'No SAD entries' && ctl B setkey -D | grepq 'No SAD entries'; then
            return 0
        fi
        sleep 0.2
    done
    fail "SAs did not expire"
}

# ---- t_ipsec_esp_keys, t_ipsec_ah_keys: key lengths ----

# valid PROTO ALG BITS [AUTH...]: the SA is taken and listed, then deleted.
valid() {
    local proto=$1 alg=$2 bits=$3 opt=-E name
    shift 3
    [ "$proto" = ah ] && opt=-A
    echo "add 198.51.100.1 198.51.100.2 $proto 10000 $opt $alg $(key "$bits") $*;" |
        ctl A setkey -c >"$WORK/k.out" 2>&1 || {
        cat "$WORK/k.out"
        fail "$proto $alg: a $bits-bit key refused"
    }
    ctl A setkey -D >"$WORK/k.list"
    # The listing names rijndael-cbc by its other name; it comes over the
    # Linux PF_KEY dialect, which has no number for ChaCha20-Poly1305 (that
    # SA is listed without its algorithm).
    name=${alg/rijndael-cbc/aes-cbc}
    [ "$alg" = chacha20-poly1305 ] && name=
    grepq '^198.51.100.1 198.51.100.2$' "$WORK/k.list" &&
        { [ -z "$name" ] || grepq ": $name\$" "$WORK/k.list"; } ||
        fail "$proto $alg: the SA with a $bits-bit key is not listed"
    echo "delete 198.51.100.1 198.51.100.2 $proto 10000;" | ctl A setkey -c ||
        fail "$proto $alg: delete"
    ctl A setkey -D | grepq 'No SAD entries' || fail "$proto $alg: SA left after delete"
}

# invalid PROTO ALG BITS WHY [AUTH...]: refused with a message matching WHY, no SA.
invalid() {
    local proto=$1 alg=$2 bits=$3 why=$4 opt=-E
    shift 4
    [ "$proto" = ah ] && opt=-A
    if echo "add 198.51.100.1 198.51.100.2 $proto 10000 $opt $alg $(key "$bits") $*;" |
        ctl A setkey -c >"$WORK/k.out" 2>&1; then
        fail "$proto $alg: a $bits-bit key taken"
    fi
    grepq -E "$why" "$WORK/k.out" || {
        cat "$WORK/k.out"
        fail "$proto $alg ($bits bits): not refused for '$why'"
    }
    ctl A setkey -D | grepq 'No SAD entries' || fail "$proto $alg: an SA after a refused add"
}

step "t_ipsec_esp_keys: valid and invalid key lengths (setkey)"
FIT='does not fit'
valid esp 3des-cbc 192
for b in 184 200; do invalid esp 3des-cbc "$b" "$FIT"; done
for b in 128 192 256; do valid esp rijndael-cbc "$b"; done
for b in 120 136 184 200 248 264; do invalid esp rijndael-cbc "$b" "$FIT"; done
for b in 128 192 256; do valid esp aes-cbc "$b"; done
for b in 120 264; do invalid esp aes-cbc "$b" "$FIT"; done
for alg in aes-gcm-16 aes-gmac; do
    for b in 160 224 288; do valid esp "$alg" "$b"; done
    for b in 152 168 216 232 280 296; do invalid esp "$alg" "$b" "$FIT"; done
done
valid esp chacha20-poly1305 288
for b in 256 280 296; do invalid esp chacha20-poly1305 "$b" "$FIT"; done
# null takes no key: a key is a syntax error, as in NetBSD. ESP with
# neither encryption nor authentication is refused (RFC 4303 3.2: one of
# them must be selected); NetBSD takes it.
invalid esp null 8 "unexpected"
invalid esp null 0 "not supported"
valid esp null 0 -A hmac-sha256 "$(key 256)"
invalid esp null 0 "$FIT" -A hmac-sha256 "$(key 248)"
# Algorithms of NetBSD's list the router does not offer: refused by name.
for alg in des-cbc blowfish-cbc cast128-cbc des-deriv aes-ctr camellia-cbc; do
    invalid esp "$alg" 64 "unsupported"
done

step "t_ipsec_ah_keys: valid and invalid key lengths (setkey)"
for spec in hmac-sha1:160:152:168 hmac-sha256:256:248:264 hmac-sha384:384:376:392 \
    hmac-sha512:512:504:520; do
    IFS=: read -r alg ok short long <<<"$spec"
    valid ah "$alg" "$ok"
    invalid ah "$alg" "$short" "$FIT"
    invalid ah "$alg" "$long" "$FIT"
done
# AES-GMAC for AH (RFC 4543): key and salt, as NetBSD's -A aes-gmac.
for b in 160 224 288; do valid ah aes-gmac "$b"; done
for b in 152 168 296; do invalid ah aes-gmac "$b" "$FIT"; done
# AH null: NetBSD takes it without a key; the router refuses AH without
# authentication (EINVAL from the daemon).
invalid ah null 8 "unexpected"
invalid ah null 0 "Invalid argument"
for alg in hmac-md5 keyed-md5 keyed-sha1 hmac-ripemd160 aes-xcbc-mac; do
    invalid ah "$alg" 128 "unsupported"
done

step "key lengths checked by the daemon too (raw PF_KEY SADB_ADD, Linux algorithm numbers)"
# pfadd WANT_ERRNO SATYPE SPI EALG EKEY_BYTES AALG AKEY_BYTES (0 bytes: no key)
pfadd() {
    local want=$1 ek=- ak=- got
    [ "$5" -gt 0 ] && ek=$(hexkey "$5")
    [ "$7" -gt 0 ] && ak=$(hexkey "$7")
    got=$("$PY" "$SOCKPY" pfkey-add "$WORK/A.pfkey" "$2" "$3" "$4" "$ek" "$6" "$ak") ||
        fail "pfkey-add"
    [ "$got" = "$want" ] || fail "SADB_ADD $2 ealg $4 ($5 bytes) aalg $6 ($7 bytes): errno $got, want $want"
}
pfadd 0 esp 300 12 16 0 0  # AES-CBC, 128 bits
pfadd 22 esp 301 12 17 0 0 # AES-CBC, 136 bits
pfadd 0 esp 302 20 20 0 0  # AES-GCM-16, 128 bits and salt
pfadd 22 esp 303 20 19 0 0
pfadd 22 esp 304 3 23 0 0 # 3DES-CBC, 184 bits
pfadd 22 esp 305 12 16 5 31 # HMAC-SHA2-256 with 248 bits
pfadd 0 ah 306 0 0 5 32
pfadd 22 ah 307 0 0 7 65 # HMAC-SHA2-512 with 520 bits
n=$(ctl A setkey -D | grep -cE '^\s+(esp|ah) mode=')
[ "$n" -eq 3 ] || fail "$n SAs after the raw adds, want 3"
ctl A setkey -F >/dev/null

step "sysctl: names, values and NetBSD's rules for them"
ctl A sysctl -a >"$WORK/sysctl.txt"
for fam in net.inet.ipsec net.inet6.ipsec6; do
    for n in esp_trans_deflev esp_net_deflev ah_trans_deflev ah_net_deflev def_policy; do
        grepq "^$fam.$n = 1\$" "$WORK/sysctl.txt" || fail "sysctl -a: no '$fam.$n = 1'"
        if [ "$n" = def_policy ]; then good=0 bad="2 -1"; else good=2 bad="0 3"; fi
        ctl A sysctl "$fam.$n=$good" | grepq "^$fam.$n: 1 -> $good\$" || fail "set $fam.$n=$good"
        ctl A sysctl "$fam.$n" | grepq "^$fam.$n = $good\$" || fail "read $fam.$n back"
        for v in $bad; do
            if ctl A sysctl "$fam.$n=$v" >/dev/null 2>&1; then
                fail "$fam.$n=$v taken"
            fi
        done
        ctl A sysctl "$fam.$n=1" >/dev/null
        ctl A sysctl "$fam.$n" | grepq "^$fam.$n = 1\$" || fail "$fam.$n not back to 1"
    done
done

# sysval SIDE NAME: the value `sysctl NAME` prints.
sysval() {
    ctl "$1" sysctl "$2" | sed -n "s/^$2 = //p"
}
# used_is SIDE V: net.inet.ipsec.used and net.inet6.ipsec6.used are V.
used_is() {
    [ "$(sysval "$1" net.inet.ipsec.used)" = "$2" ] &&
        [ "$(sysval "$1" net.inet6.ipsec6.used)" = "$2" ] ||
        fail "$1: used is not $2: $(ctl "$1" sysctl net.inet.ipsec.used net.inet6.ipsec6.used)"
}

step "t_ipsec_sysctl: enabled and used (IPv4 on A, IPv6 on B)"
for side in A B; do
    grepq '^net.inet.ipsec.enabled = 1$' <(ctl "$side" sysctl -a) || fail "$side: enabled not 1"
    grepq '^net.inet6.ipsec6.enabled = 1$' <(ctl "$side" sysctl -a) || fail "$side: enabled6 not 1"
    grepq '^net.key.prefered_oldsa = 0$' <(ctl "$side" sysctl -a) || fail "$side: prefered_oldsa"
    used_is "$side" 0
done
sk A <<<"add 198.51.100.1 198.51.100.2 esp 9876 -E 3des-cbc \"hogehogehogehogehogehoge\";"
sk B <<<"add 2001:db8:1::1 2001:db8:1::2 esp 9876 -E 3des-cbc \"hogehogehogehogehogehoge\";"
used_is A 0
used_is B 0
sk A <<<"spdadd 198.51.100.1 198.51.100.2 any -P out ipsec esp/transport//use;"
sk B <<<"spdadd 2001:db8:1::1 2001:db8:1::2 any -P out ipsec esp/transport//use;"
used_is A 1
used_is B 1
for v in 0 1; do
    if ctl A sysctl "net.inet.ipsec.used=$v" 2>"$WORK/ro.err"; then
        fail "used=$v taken"
    fi
    grepq 'read-only' "$WORK/ro.err" || fail "used=$v: $(cat "$WORK/ro.err")"
done
for v in 3 -1; do
    if ctl A sysctl "net.inet.ipsec.enabled=$v" >/dev/null 2>&1; then
        fail "enabled=$v taken"
    fi
done
if ctl A sysctl net.inet.ipsec.enabled=0 2>"$WORK/busy.err"; then
    fail "enabled=0 taken with a policy"
fi
grepq 'busy' "$WORK/busy.err" || fail "enabled=0: $(cat "$WORK/busy.err")"
[ "$(sysval A net.inet.ipsec.enabled)" = 1 ] || fail "enabled changed by a refused write"
flush
# The SPD empty again: used stays 1 (as NetBSD's), until enabled 0.
used_is A 1
for side in A B; do
    ctl "$side" sysctl net.inet6.ipsec6.enabled=0 | grepq '^net.inet6.ipsec6.enabled: 1 -> 0$' ||
        fail "$side: enabled=0 without policies"
    used_is "$side" 0
    [ "$(sysval "$side" net.inet.ipsec.enabled)" = 0 ] || fail "$side: enabled is not 0"
    ctl "$side" sysctl net.inet.ipsec.enabled=1 >/dev/null
    used_is "$side" 0
done
for v in 2 -1; do
    if ctl A sysctl "net.key.prefered_oldsa=$v" >/dev/null 2>&1; then
        fail "prefered_oldsa=$v taken"
    fi
done

if [ "$HOST" -eq 0 ]; then
    echo "SKIP: ipsecifd has no -H (host mode); the key and sysctl checks above passed"
    exit 77
fi

# ---- traffic ----

step "plain traffic between A and B, and from L to R through them"
reach "$NSA" 198.51.100.2
reach "$NSA" -6 2001:db8:1::2
reach "$NSL" 203.0.113.66
reach "$NSL" -6 2001:db8:b::2

# nft_used0 NS: the host table there is the one rule for IPsec not in use.
nft_used0() {
    in_ns "$1" nft list table inet ipsecif_host | grepq 'comment "net.inet.ipsec.used 0"'
}

step "t_ipsec_sysctl: used 0 lets def_policy 0 be, enabled 2 and 1 apply it, enabled 0 ends it"
used_is B 0
polvio=$(stat B "outbound packets violated process security policy")
ctl B sysctl net.inet.ipsec.def_policy=0 >/dev/null
reach "$NSA" 198.51.100.2
reach "$NSB" 198.51.100.1
for _ in $(seq 20); do nft_used0 "$NSB" && break; sleep 0.1; done
nft_used0 "$NSB" || fail "B's host table is not the used-0 one"
ctl B sysctl net.inet.ipsec.enabled=2 >/dev/null
used_is B 1
unreach "$NSA" 198.51.100.2
unreach "$NSB" 198.51.100.1
grows B "outbound packets violated process security policy" "$polvio"
if nft_used0 "$NSB"; then
    fail "B's host table still the used-0 one"
fi
ctl B sysctl net.inet.ipsec.enabled=1 >/dev/null
used_is B 1
unreach "$NSA" 198.51.100.2
ctl B sysctl net.inet.ipsec.enabled=0 >/dev/null
used_is B 0
reach "$NSA" 198.51.100.2
reach "$NSB" 198.51.100.1
# A policy added while enabled is 0 is not applied until enabled is 1.
sk B <<<"spdadd 198.51.100.2 198.51.100.1 any -P out discard;"
used_is B 0
reach "$NSB" 198.51.100.1
if ctl B sysctl net.inet.ipsec.enabled=0 >/dev/null 2>&1; then
    fail "B: enabled=0 taken again with a policy"
fi
ctl B sysctl net.inet.ipsec.enabled=1 >/dev/null
used_is B 1
polvio=$(stat B "outbound packets violated process security policy")
unreach "$NSB" 198.51.100.1
grows B "outbound packets violated process security policy" "$polvio"
ctl B setkey -FP >/dev/null
ctl B sysctl net.inet.ipsec.def_policy=1 >/dev/null
reach "$NSB" 198.51.100.1
reach "$NSA" 198.51.100.2

# transport PROTO SPI FAMILY ALGARGS: SAs both ways (SPI from A, SPI+1
# from B) and an out policy on each side that requires them, as NetBSD's
# transport tests set up; then one ping from A.
transport() {
    local proto=$1 spi=$2 a=198.51.100.1 b=198.51.100.2 fam=
    shift 2
    if [ "$1" = 6 ]; then
        a=2001:db8:1::1 b=2001:db8:1::2 fam=-6
    fi
    shift
    flush
    both <<EOF
add $a $b $proto $spi $*;
add $b $a $proto $((spi + 1)) $*;
EOF
    sk A <<<"spdadd $a $b any -P out ipsec $proto/transport//require;"
    sk B <<<"spdadd $b $a any -P out ipsec $proto/transport//require;"
    reach "$NSA" $fam "$b"
}

step "t_ipsec_esp_keys, t_ipsec_ah_keys, t_ipsec_transport: traffic with each algorithm"
cap_start keys "$NSB" veth-ba
out0=$(stat A "host packets sent with IPsec")
transport esp 4096 4 -E 3des-cbc "$(key 192)"
transport esp 4098 4 -E rijndael-cbc "$(key 128)"
transport esp 4100 4 -E rijndael-cbc "$(key 256)" -A hmac-sha512 "$(key 512)"
transport esp 4102 4 -E aes-gcm-16 "$(key 160)"
transport esp 4104 4 -E aes-gmac "$(key 288)"
transport esp 4106 4 -E chacha20-poly1305 "$(key 288)"
transport esp 4108 4 -E null -A hmac-sha1 "$(key 160)"
transport ah 4110 4 -A hmac-sha1 "$(key 160)"
transport ah 4112 4 -A hmac-sha256 "$(key 256)"
transport ah 4114 4 -A hmac-sha384 "$(key 384)"
transport ah 4116 4 -A hmac-sha512 "$(key 512)"
transport ah 4122 4 -A aes-gmac "$(key 224)"
transport esp 4118 6 -E aes-gcm-16 "$(key 224)"
transport ah 4120 6 -A hmac-sha256 "$(key 256)"
cap_stop keys
for spi in 4096 4098 4100 4102 4104 4106 4108; do
    seen keys "IP 198.51.100.1 > 198.51.100.2: ESP\\(spi=$(printf 0x%08x "$spi"),"
    seen keys "IP 198.51.100.2 > 198.51.100.1: ESP\\(spi=$(printf 0x%08x $((spi + 1))),"
done
for spi in 4110 4112 4114 4116 4122; do
    seen keys "IP 198.51.100.1 > 198.51.100.2: AH\\(spi=$(printf 0x%08x "$spi"),.*ICMP echo request"
    seen keys "IP 198.51.100.2 > 198.51.100.1: AH\\(spi=$(printf 0x%08x $((spi + 1))),.*ICMP echo reply"
done
seen keys "IP6 2001:db8:1::1 > 2001:db8:1::2: ESP\\(spi=0x00001016,"
seen keys "IP6 2001:db8:1::2 > 2001:db8:1::1: ESP\\(spi=0x00001017,"
seen keys "IP6 2001:db8:1::1 > 2001:db8:1::2: AH\\(spi=0x00001018,"
seen keys "IP6 2001:db8:1::2 > 2001:db8:1::1: AH\\(spi=0x00001019,"
unseen keys "$CLEAR"
grows A "host packets sent with IPsec" "$out0"

# ---- t_ipsec_sysctl: the levels default follows, def_policy ----

# deflev NAME REQUEST FAMILY OTHER: A's out and in policies with REQUEST
# at level default (@DIR: the policy's endpoints), no SAs, B without
# policies. With NAME 1 (use) pings go in clear; with OTHER, a sysctl that
# does not cover the request, at 2 they still do; with NAME 2 (require) they
# are dropped, counted and an ACQUIRE is raised.
deflev() {
    local name=$1 req=$2 fam=$3 other=$4 a=198.51.100.1 b=198.51.100.2 ping6='' nosa acq
    if [ "$fam" = 6 ]; then
        a=2001:db8:1::1 b=2001:db8:1::2 ping6=-6
    fi
    flush
    sk A <<EOF
spdadd $a $b any -P out ipsec ${req//@DIR/$a-$b};
spdadd $b $a any -P in ipsec ${req//@DIR/$b-$a};
EOF
    cap_start "lev-$name" "$NSB" veth-ba
    reach "$NSA" $ping6 "$b"
    ctl A sysctl "$other=2" >/dev/null
    reach "$NSA" $ping6 "$b"
    ctl A sysctl "$other=1" >/dev/null
    cap_stop "lev-$name"
    seen "lev-$name" "$a > $b: ICMP6?,? echo request"
    unseen "lev-$name" "$a > $b: (ESP|AH)"
    nosa=$(stat A "outbound packets with no SA available")
    acq=$(stat A "ACQUIRE events raised")
    ctl A sysctl "$name=2" >/dev/null
    unreach "$NSA" $ping6 "$b"
    grows A "outbound packets with no SA available" "$nosa"
    grows A "ACQUIRE events raised" "$acq"
    ctl A sysctl "$name=1" >/dev/null
    reach "$NSA" $ping6 "$b"
}

step "t_ipsec_sysctl: esp_trans_deflev, IPv4 and IPv6 (each family has its own)"
deflev net.inet.ipsec.esp_trans_deflev esp/transport//default 4 net.inet6.ipsec6.esp_trans_deflev
deflev net.inet6.ipsec6.esp_trans_deflev esp/transport//default 6 net.inet.ipsec.esp_trans_deflev
step "t_ipsec_sysctl: ah_trans_deflev, esp_net_deflev, ah_net_deflev"
deflev net.inet.ipsec.ah_trans_deflev ah/transport//default 4 net.inet.ipsec.esp_trans_deflev
deflev net.inet.ipsec.esp_net_deflev esp/tunnel/@DIR/default 4 net.inet.ipsec.esp_trans_deflev
deflev net.inet6.ipsec6.ah_net_deflev ah/tunnel/@DIR/default 6 net.inet6.ipsec6.esp_net_deflev

step "t_ipsec_sysctl: def_policy, out and in, per family"
flush
polvio=$(stat A "outbound packets violated process security policy")
ctl A sysctl net.inet.ipsec.def_policy=0 >/dev/null
unreach "$NSA" 198.51.100.2
grows A "outbound packets violated process security policy" "$polvio"
reach "$NSA" -6 2001:db8:1::2
# Outbound allowed by a policy: what comes in is left to def_policy.
sk A <<<"spdadd 198.51.100.1 198.51.100.2 any -P out none;"
unreach "$NSB" 198.51.100.1
ctl A sysctl net.inet.ipsec.def_policy=1 >/dev/null
reach "$NSB" 198.51.100.1
reach "$NSA" 198.51.100.2
ctl A sysctl net.inet6.ipsec6.def_policy=0 >/dev/null
unreach "$NSA" -6 2001:db8:1::2
reach "$NSA" 198.51.100.2
ctl A sysctl net.inet6.ipsec6.def_policy=1 >/dev/null
reach "$NSA" -6 2001:db8:1::2

# ---- t_ipsec_sockopt ----

# ask NS SIDE ADDR PORT PEER PEER_PORT POLICY: one UDP exchange from a socket
# with POLICY, under the preload library talking to SIDE's daemon.
ask() {
    in_ns "$1" env LD_PRELOAD="$PRELOAD" IPSECIF_PFKEY_SOCKET="$WORK/$2.pfkey" \
        "$PY" "$SOCKPY" ask "$3" "$4" "$5" "$6" "$7" >>"$WORK/ask.log" 2>&1
}
answered() {
    ask "$@" || fail "no answer from $5:$6 to $3:$4 ($7)"
}
unanswered() {
    if ask "$@"; then
        fail "an answer from $5:$6 to $3:$4 ($7)"
    fi
}
# serve NS SIDE ADDR PORT POLICY: a UDP echo server in the background.
serve() {
    local ready=$WORK/serve-$4.ready
    ip netns exec "$1" env LD_PRELOAD="$PRELOAD" IPSECIF_PFKEY_SOCKET="$WORK/$2.pfkey" \
        "$PY" "$SOCKPY" serve "$3" "$4" "$5" "$ready" >>"$WORK/serve.log" 2>&1 &
    BGPIDS+=($!)
    for _ in $(seq 50); do
        [ -f "$ready" ] && return 0
        sleep 0.1
    done
    fail "UDP server on $3:$4 did not start"
}

step "t_ipsec_sockopt: IP_IPSEC_POLICY out/in require on a socket, no SPD"
flush
serve "$NSB" B 198.51.100.2 47000 none
serve "$NSB" B 2001:db8:1::2 47010 none
# No SA yet: what the socket sends is dropped, an ACQUIRE raised.
acq=$(stat A "ACQUIRE events raised")
unanswered "$NSA" A 198.51.100.1 47005 198.51.100.2 47000 out-esp-require
grows A "ACQUIRE events raised" "$acq"
both <<EOF
add 198.51.100.1 198.51.100.2 esp 10000 -E rijndael-cbc $(key 128);
add 198.51.100.2 198.51.100.1 esp 10001 -E rijndael-cbc $(key 128);
add 2001:db8:1::1 2001:db8:1::2 esp 10002 -E rijndael-cbc $(key 128);
add 2001:db8:1::2 2001:db8:1::1 esp 10003 -E rijndael-cbc $(key 128);
EOF
cap_start sock1 "$NSB" veth-ba
# out require: ESP out, the answer in clear is taken (in: entrust).
answered "$NSA" A 198.51.100.1 47001 198.51.100.2 47000 out-esp-require
cap_stop sock1
seen sock1 "198.51.100.1 > 198.51.100.2: ESP\\(spi=0x00002710,"
seen sock1 "198.51.100.2.47000 > 198.51.100.1.47001: UDP"
unseen sock1 "198.51.100.1.47001 > 198.51.100.2.47000: UDP"
# The same on an IPv6 socket (IPV6_IPSEC_POLICY).
cap_start sock6 "$NSB" veth-ba
answered "$NSA" A 2001:db8:1::1 47006 2001:db8:1::2 47010 out-esp-require
cap_stop sock6
seen sock6 "IP6 2001:db8:1::1 > 2001:db8:1::2: ESP\\(spi=0x00002712,"
seen sock6 "IP6 2001:db8:1::2.47010 > 2001:db8:1::1.47006: UDP"
# in require as well: the clear answer is refused.
unanswered "$NSA" A 198.51.100.1 47002 198.51.100.2 47000 out-esp-require,in-esp-require
# A socket without a policy: clear both ways.
cap_start sock2 "$NSB" veth-ba
answered "$NSA" A 198.51.100.1 47003 198.51.100.2 47000 none
cap_stop sock2
seen sock2 "198.51.100.1.47003 > 198.51.100.2.47000: UDP"
# The peer protects its answers by SPD: now both ways are ESP.
sk B <<<"spdadd 198.51.100.2 198.51.100.1 any -P out ipsec esp/transport//require;"
cap_start sock3 "$NSB" veth-ba
answered "$NSA" A 198.51.100.1 47004 198.51.100.2 47000 out-esp-require,in-esp-require
cap_stop sock3
seen sock3 "198.51.100.1 > 198.51.100.2: ESP\\(spi=0x00002710,"
seen sock3 "198.51.100.2 > 198.51.100.1: ESP\\(spi=0x00002711,"
unseen sock3 "UDP"

step "t_ipsec_sockopt: racoon's bypass under an SPD that requires ESP for everything"
flush
both <<EOF
spdadd 0.0.0.0/0 0.0.0.0/0 any -P out ipsec esp/transport//require;
spdadd 0.0.0.0/0 0.0.0.0/0 any -P in ipsec esp/transport//require;
EOF
serve "$NSB" B 198.51.100.2 500 in-bypass,out-bypass
cap_start ike "$NSB" veth-ba
acq=$(stat A "ACQUIRE events raised")
nosa=$(stat A "outbound packets with no SA available")
answered "$NSA" A 198.51.100.1 500 198.51.100.2 500 in-bypass,out-bypass
unanswered "$NSA" A 198.51.100.1 501 198.51.100.2 500 none
cap_stop ike
seen ike "198.51.100.1.500 > 198.51.100.2.500: .*(isakmp|UDP)"
seen ike "198.51.100.2.500 > 198.51.100.1.500: .*(isakmp|UDP)"
unseen ike "198.51.100.1.501 > "
grows A "ACQUIRE events raised" "$acq"
grows A "outbound packets with no SA available" "$nosa"

# ---- t_ipsec_misc ----

# sa_pair PROTO SPI A B LIFETIME: SAs both ways on both sides (SPI from A to B, SPI+1 back).
sa_pair() {
    local life=
    [ "$5" -gt 0 ] && life="-lh $5 -ls $5"
    both <<EOF
add $3 $4 $1 $2 $life -E aes-gcm-16 $(key 160);
add $4 $3 $1 $(($2 + 1)) $life -E aes-gcm-16 $(key 160);
EOF
}
sp_pair() {
    sk A <<<"spdadd 198.51.100.1 198.51.100.2 any -P out ipsec esp/transport//require;"
    sk B <<<"spdadd 198.51.100.2 198.51.100.1 any -P out ipsec esp/transport//require;"
}

step "t_ipsec_misc: lifetime: used SAs expire, then traffic stops (no SA)"
flush
sa_pair esp 10000 198.51.100.1 198.51.100.2 2
sp_pair
cap_start life "$NSB" veth-ba
reach "$NSA" 198.51.100.2
cap_stop life
seen life "198.51.100.1 > 198.51.100.2: ESP"
seen life "198.51.100.2 > 198.51.100.1: ESP"
sadb_gone
grepq "EXPIRE (hard" "$WORK/A.log" || fail "A logged no hard EXPIRE"
nosa=$(stat A "outbound packets with no SA available")
unreach "$NSA" 198.51.100.2
grows A "outbound packets with no SA available" "$nosa"

step "t_ipsec_misc: update of an SA, of a policy; getspi then update"
flush
sa_pair esp 10000 198.51.100.1 198.51.100.2 100
sp_pair
# As NetBSD's test: the same algorithm and key (a mature SA takes new
# lifetimes only; a key of another length is refused).
both <<EOF
update 198.51.100.1 198.51.100.2 esp 10000 -lh 200 -ls 200 -E aes-gcm-16 $(key 160);
update 198.51.100.2 198.51.100.1 esp 10001 -lh 200 -ls 200 -E aes-gcm-16 $(key 160);
EOF
ctl A setkey -D | grepq 'hard: 200(s)' || fail "update did not change the lifetime"
reach "$NSA" 198.51.100.2
sk A <<<"spdupdate 198.51.100.1 198.51.100.2 any -P out ipsec esp/transport//require;"
sk B <<<"spdupdate 198.51.100.2 198.51.100.1 any -P out ipsec esp/transport//require;"
reach "$NSA" 198.51.100.2
flush
both <<EOF
getspi 198.51.100.1 198.51.100.2 esp 10000;
getspi 198.51.100.2 198.51.100.1 esp 10001;
EOF
ctl A setkey -D | grepq 'state=larval' || fail "getspi made no larval SA"
sp_pair
unreach "$NSA" 198.51.100.2
both <<EOF
update 198.51.100.1 198.51.100.2 esp 10000 -E aes-gcm-16 $(key 160);
update 198.51.100.2 198.51.100.1 esp 10001 -E aes-gcm-16 $(key 160);
EOF
cap_start getspi "$NSB" veth-ba
reach "$NSA" 198.51.100.2
cap_stop getspi
seen getspi "198.51.100.1 > 198.51.100.2: ESP\\(spi=0x00002710,"
seen getspi "198.51.100.2 > 198.51.100.1: ESP\\(spi=0x00002711,"

# spi_order PREF AB BA: NetBSD's test_spi with net.key.prefered_oldsa PREF
# on both sides: SAs 10000, then 10010, then 10020 added, then 10020 and
# 10010 deleted, one ping after each step; the SPIs seen on the wire from
# A to B and back, in order (repeats folded), must be AB and BA.
spi_order() {
    local got
    flush
    ctl A sysctl "net.key.prefered_oldsa=$1" >/dev/null
    ctl B sysctl "net.key.prefered_oldsa=$1" >/dev/null
    sa_pair esp 10000 198.51.100.1 198.51.100.2 100
    sp_pair
    cap_start "spi$1" "$NSB" veth-ba
    reach "$NSA" 198.51.100.2
    sa_pair esp 10010 198.51.100.1 198.51.100.2 100
    reach "$NSA" 198.51.100.2
    sa_pair esp 10020 198.51.100.1 198.51.100.2 100
    reach "$NSA" 198.51.100.2
    both <<<"delete 198.51.100.1 198.51.100.2 esp 10020; delete 198.51.100.2 198.51.100.1 esp 10021;"
    reach "$NSA" 198.51.100.2
    both <<<"delete 198.51.100.1 198.51.100.2 esp 10010; delete 198.51.100.2 198.51.100.1 esp 10011;"
    reach "$NSA" 198.51.100.2
    cap_stop "spi$1"
    got=$(order "spi$1" 198.51.100.1 198.51.100.2)
    [ "$got" = "$2" ] || fail "prefered_oldsa=$1: SPIs A to B in order: $got (want $2)"
    got=$(order "spi$1" 198.51.100.2 198.51.100.1)
    [ "$got" = "$3" ] || fail "prefered_oldsa=$1: SPIs B to A in order: $got (want $3)"
}
order() {
    grep -oE "^.*IP $2 > $3: ESP\\(spi=0x[0-9a-f]+" "$WORK/$1.txt" | sed 's/.*spi=0x0*//' | uniq |
        tr '\n' ' '
}

step "t_ipsec_misc: several SAs for one pair: the newest is used, deleting falls back"
spi_order 0 "2710 271a 2724 271a 2710 " "2711 271b 2725 271b 2711 "
step "t_ipsec_misc: several SAs for one pair, net.key.prefered_oldsa=1: the oldest is used"
spi_order 1 "2710 " "2711 "
ctl A sysctl net.key.prefered_oldsa=0 >/dev/null
ctl B sysctl net.key.prefered_oldsa=0 >/dev/null

step "t_ipsec_misc: a policy to 0.0.0.0/0, SAs per peer"
flush
sk A <<EOF
spdadd 198.51.100.1 0.0.0.0/0 any -P out ipsec esp/transport//require;
spdadd 0.0.0.0/0 198.51.100.1 any -P in ipsec esp/transport//require;
EOF
sk B <<EOF
spdadd 0.0.0.0/0 198.51.100.1 any -P out ipsec esp/transport//require;
spdadd 198.51.100.1 0.0.0.0/0 any -P in ipsec esp/transport//require;
EOF
unreach "$NSA" 198.51.100.2
unreach "$NSA" 198.51.100.3
sa_pair esp 10000 198.51.100.1 198.51.100.2 100
reach "$NSA" 198.51.100.2
unreach "$NSA" 198.51.100.3
sa_pair esp 10010 198.51.100.1 198.51.100.3 100
reach "$NSA" 198.51.100.2
reach "$NSA" 198.51.100.3
for side in A B; do
    ctl "$side" setkey -DP >"$WORK/multi.$side"
    grepq -E '^\s+esp/transport//require$' "$WORK/multi.$side" || fail "$side: the policy changed"
    if grepq 'esp/transport/.+-.+/require' "$WORK/multi.$side"; then
        fail "$side: the policy got endpoints"
    fi
done

step "t_ipsec_misc: spddelete ends the protection"
sk A <<EOF
spddelete 198.51.100.1 0.0.0.0/0 any -P out;
spddelete 0.0.0.0/0 198.51.100.1 any -P in;
EOF
sk B <<EOF
spddelete 0.0.0.0/0 198.51.100.1 any -P out;
spddelete 198.51.100.1 0.0.0.0/0 any -P in;
EOF
cap_start spddel "$NSB" veth-ba
reach "$NSA" 198.51.100.2
cap_stop spddel
seen spddel "198.51.100.1 > 198.51.100.2: ICMP echo request"
seen spddel "198.51.100.2 > 198.51.100.1: ICMP echo reply"
unseen spddel "ESP"

# ---- t_ipsec_tunnel_odd ----

# odd PROTO SPI OUTER_A OUTER_B NET_L NET_R: tunnel-mode SAs and policies on
# the gateways (NetBSD's sample VPN): NET_L behind A, NET_R behind B.
odd() {
    local proto=$1 spi=$2 oa=$3 ob=$4 nl=$5 nr=$6 args
    args="-E aes-gcm-16 $(key 160)"
    [ "$proto" = ah ] && args="-A hmac-sha256 $(key 256)"
    flush
    both <<EOF
add $oa $ob $proto $spi $args;
add $ob $oa $proto $((spi + 1)) $args;
EOF
    sk A <<EOF
spdadd $nl $nr any -P out ipsec $proto/tunnel/$oa-$ob/require;
spdadd $nr $nl any -P in ipsec $proto/tunnel/$ob-$oa/require;
EOF
    sk B <<EOF
spdadd $nr $nl any -P out ipsec $proto/tunnel/$ob-$oa/require;
spdadd $nl $nr any -P in ipsec $proto/tunnel/$oa-$ob/require;
EOF
}

step "t_ipsec_tunnel_odd: without IPsec the hosts' packets cross the link as they are"
flush
cap_start odd0 "$NSB" veth-ba
reach "$NSL" 203.0.113.66
reach "$NSL" -6 2001:db8:b::2
cap_stop odd0
seen odd0 "IP 203.0.113.2 > 203.0.113.66: ICMP echo request"
seen odd0 "IP6 2001:db8:a::2 > 2001:db8:b::2: ICMP6, echo request"

for proto in esp ah; do
    P=${proto^^}
    step "t_ipsec_tunnel_odd: IPv4 inside IPv6 ($proto)"
    odd "$proto" 20000 2001:db8:1::1 2001:db8:1::2 203.0.113.0/26 203.0.113.64/26
    cap_start "odd46$proto" "$NSB" veth-ba
    reach "$NSL" 203.0.113.66
    cap_stop "odd46$proto"
    seen "odd46$proto" "IP6 2001:db8:1::1 > 2001:db8:1::2: $P\\(spi=0x00004e20,"
    seen "odd46$proto" "IP6 2001:db8:1::2 > 2001:db8:1::1: $P\\(spi=0x00004e21,"
    unseen "odd46$proto" "^[^(]*IP 203.0.113"
    step "t_ipsec_tunnel_odd: IPv6 inside IPv4 ($proto)"
    odd "$proto" 20010 198.51.100.1 198.51.100.2 2001:db8:a::/64 2001:db8:b::/64
    cap_start "odd64$proto" "$NSB" veth-ba
    reach "$NSL" -6 2001:db8:b::2
    cap_stop "odd64$proto"
    seen "odd64$proto" "IP 198.51.100.1 > 198.51.100.2: $P\\(spi=0x00004e2a,"
    seen "odd64$proto" "IP 198.51.100.2 > 198.51.100.1: $P\\(spi=0x00004e2b,"
    unseen "odd64$proto" "^[^(]*IP6 2001:db8:a::2"
done

echo "PASS"
