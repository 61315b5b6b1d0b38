#!/usr/bin/env bash
# Firmware build check: cross-compile the core (lib/), the Mbed TLS crypto
# backend and the lwIP port for a Cortex-M4 with arm-none-eabi-gcc and
# newlib, against Debian's lwIP headers (liblwip-dev) with a NO_SYS=1
# lwipopts.h and Debian's Mbed TLS headers with a small configuration
# (ports/lwip/mcu/), and the sample options ports/lwip/ipsecif_opts_small.h.
# Any warning fails the build. Then prints:
#   - text/data/bss per object and summed per directory (arm-none-eabi-size;
#     objects before linking, so an upper bound: the linker's
#     --gc-sections drops what a firmware does not call);
#   - RAM: the target's sizes of the core's records (from a target object,
#     read back with arm-none-eabi-nm), and what one more interface and one
#     more SA add to the context, measured with ipsecif_ctx_size() in a host
#     program built with the same options (the host is 64-bit, so its
#     pointers are twice the target's: the figures are an upper bound).
#
# usage: scripts/firmware.sh [BUILD_DIR]   (default build-firmware)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-build-firmware}
CC_ARM=${CC_ARM:-arm-none-eabi-gcc}

need() {
    if ! command -v "$CC_ARM" >/dev/null 2>&1 || [ ! -f /usr/include/lwip/lwip/init.h ] ||
        [ ! -f /usr/include/mbedtls/gcm.h ] ||
        ! echo '#include <string.h>' | "$CC_ARM" -x c -fsyntax-only - 2>/dev/null; then
        return 0
    fi
    return 1
}
if need; then
    bash scripts/deps.sh
fi
if need; then
    echo "firmware: needs $CC_ARM with newlib, liblwip-dev and libmbedtls-dev" >&2
    exit 1
fi

rm -rf "$OUT"
mkdir -p "$OUT/obj" "$OUT/inc"
# Only the libraries' header folders, never the host's /usr/include.
ln -s /usr/include/mbedtls "$OUT/inc/mbedtls"

CFLAGS=(-mcpu=cortex-m4 -mthumb -Os -ffunction-sections -fdata-sections -std=c11
    -Wall -Wextra -Werror -Wundef -Wshadow -Wstrict-prototypes -Wmissing-prototypes)
INCS=(-I"$ROOT/include" -I"$ROOT/lib" -I"$ROOT/ports/crypto-mbedtls" -I"$ROOT/ports/lwip"
    -I"$ROOT/ports/lwip/mcu" -I/usr/include/lwip -I"$OUT/inc")
DEFS=(-DIPSECIF_OPTS_FILE='"ipsecif_opts_small.h"'
    -DMBEDTLS_CONFIG_FILE='"mbedtls_mcu_config.h"')

# The same lists the CMake build uses (cmake/ipsecif-sources.cmake), less
# the OpenSSL and intel-ipsec-mb backends (host libraries, no firmware has them).
mapfile -t SOURCES < <(sed -n 's|^ *\${IPSECIF_ROOT_DIR}/\(.*\.c\)$|\1|p' \
    cmake/ipsecif-sources.cmake | grep -v -e '^ports/crypto-openssl/' -e '^ports/crypto-ipsecmb/')
SOURCES+=(ports/lwip/lwip_port.c)

echo "firmware: $CC_ARM $("$CC_ARM" -dumpversion), ${CFLAGS[*]}"
for src in "${SOURCES[@]}"; do
    obj="$OUT/obj/${src//\//__}"
    obj="${obj%.c}.o"
    # Warnings are errors; keep the compiler's words if there are any.
    if ! "$CC_ARM" "${CFLAGS[@]}" "${INCS[@]}" "${DEFS[@]}" -c "$ROOT/$src" -o "$obj" \
        2>"$obj.log"; then
        cat "$obj.log"
        echo "firmware: $src does not build" >&2
        exit 1
    fi
    if [ -s "$obj.log" ]; then
        cat "$obj.log"
        echo "firmware: $src gave diagnostics" >&2
        exit 1
    fi
done

# What lib/ needs from outside itself, read from the objects: only <string.h>
# functions and the compiler's own helpers (__aeabi_*), nothing a firmware
# might lack (malloc, stdio, a clock, threads, exit).
mapfile -t LIBOBJ < <(printf '%s\n' "${SOURCES[@]}" | grep '^lib/' |
    sed 's|/|__|g; s|\.c$|.o|; s|^|'"$OUT"'/obj/|')
needs=$(comm -23 <(arm-none-eabi-nm -u "${LIBOBJ[@]}" | awk 'NF == 2 {print $2}' | sort -u) \
    <(arm-none-eabi-nm --defined-only "${LIBOBJ[@]}" | awk 'NF == 3 {print $3}' | sort -u))
echo "lib/ needs from outside: $(echo $needs)"
bad=$(printf '%s\n' $needs | grep -Ev '^(mem(cpy|move|set|cmp)|str(len|n?cmp|nlen)|__aeabi_[a-z0-9_]+)$' || true)
if [ -n "$bad" ]; then
    echo "firmware: lib/ calls what a microcontroller may lack: $(echo $bad)" >&2
    exit 1
fi

echo
echo "Flash and static RAM per object (bytes, before --gc-sections):"
printf '  %-40s %8s %6s %6s\n' object text data bss
declare -A dt dd db
for src in "${SOURCES[@]}"; do
    obj="$OUT/obj/${src//\//__}"
    obj="${obj%.c}.o"
    read -r t d b _ < <(arm-none-eabi-size -B "$obj" | tail -n 1)
    printf '  %-40s %8d %6d %6d\n' "$src" "$t" "$d" "$b"
    dir=$(dirname "$src")
    dt[$dir]=$((${dt[$dir]:-0} + t))
    dd[$dir]=$((${dd[$dir]:-0} + d))
    db[$dir]=$((${db[$dir]:-0} + b))
done
echo
echo "Per directory:"
printf '  %-40s %8s %6s %6s\n' directory text data bss
tt=0
for dir in $(printf '%s\n' "${!dt[@]}" | sort); do
    printf '  %-40s %8d %6d %6d\n' "$dir" "${dt[$dir]}" "${dd[$dir]}" "${db[$dir]}"
    tt=$((tt + ${dt[$dir]}))
done
printf '  %-40s %8d\n' "total text" "$tt"

# Target sizes: arrays sized by sizeof, read back with nm -S.
cat >"$OUT/sizes_target.c" <<'EOF'
#include "ipsecif_lwip.h"
#include "core/ctx.h"
char sz_ctx[sizeof(struct ipsecif_ctx)];
char sz_if[sizeof(struct ipsecif_if)];
char sz_sa[sizeof(struct ipsecif_sa)];
char sz_sp[sizeof(struct ipsecif_sp)];
char sz_replay_bits[IPSECIF_REPLAY_WINDOW_MAX / 8];
char sz_crypto_slot[IPSECIF_CRYPTO_SLOT_SIZE];
char sz_lwip_port[sizeof(struct ipsecif_lwip)];
char sz_lwip_if[sizeof(struct ipsecif_lwip_if)];
char sz_lwip_buf[IPSECIF_LWIP_BUF_SIZE];
char sz_lwip_txbuf[sizeof(struct ipsecif_lwip_txbuf)];
EOF
"$CC_ARM" "${CFLAGS[@]}" -Wno-missing-variable-declarations "${INCS[@]}" "${DEFS[@]}" \
    -c "$OUT/sizes_target.c" -o "$OUT/sizes_target.o"
echo
echo "Cortex-M4 sizes with ipsecif_opts_small.h (bytes):"
arm-none-eabi-nm -S "$OUT/sizes_target.o" | sort -k4 | while read -r _ size _ name; do
    printf '  %-16s %6d\n' "$name" "$((16#$size))"
done

# Context growth per interface and per SA: ipsecif_ctx_size() itself, on the host.
cat >"$OUT/sizes_host.c" <<'EOF'
#include <stdio.h>

#include "ipsecif/ipsecif.h"
#include "core/ctx.h"

static size_t size_of(unsigned ifs, unsigned pols, unsigned sas)
{
    struct ipsecif_config c;

    ipsecif_config_default(&c);
    c.max_interfaces = ifs;
    c.max_policies = pols;
    c.max_sas = sas;
    c.replay_window_max = 64;
    c.max_pfkey_endpoints = 0;
    return ipsecif_ctx_size(&c);
}

int main(void)
{
    size_t base = size_of(1, 8, 4);

    printf("  context, 1 interface, 8 policies, 4 SAs:  %zu\n", base);
    printf("  + 1 interface (no policies):              %zu\n", size_of(2, 8, 4) - base);
    printf("  + 1 interface with its 4 policies:        %zu\n", size_of(2, 12, 4) - base);
    printf("  + 1 policy:                               %zu\n", size_of(1, 9, 4) - base);
    printf("  + 1 SA (64-packet replay window):         %zu\n", size_of(1, 8, 5) - base);
    printf("  + 8 SAs, per SA:                          %zu\n", (size_of(1, 8, 12) - base) / 8);
    printf("  host sizeof: ctx %zu, if %zu, sa %zu, sp %zu\n", sizeof(struct ipsecif_ctx),
           sizeof(struct ipsecif_if), sizeof(struct ipsecif_sa), sizeof(struct ipsecif_sp));
    return 0;
}
EOF
mapfile -t CORE < <(printf '%s\n' "${SOURCES[@]}" | grep '^lib/')
cc -std=c11 -O1 -Wall -Wextra -Werror -I"$ROOT/include" -I"$ROOT/lib" -I"$ROOT/ports/lwip" \
    -DIPSECIF_OPTS_FILE='"ipsecif_opts_small.h"' "$OUT/sizes_host.c" \
    "${CORE[@]/#/$ROOT/}" -o "$OUT/sizes_host"
echo
echo "Context memory with ipsecif_opts_small.h, from ipsecif_ctx_size() (64-bit host, bytes):"
"$OUT/sizes_host"
echo
echo "firmware: OK"
