#!/usr/bin/env bash
# The core must build for a microcontroller: lib/ includes only the C
# freestanding headers, <string.h>, and the project's own headers; it calls no
# allocator, no clock and no stdio.
set -u
root=${1:-$(dirname "$0")/..}
fail=0
allowed='^#include (<stdint\.h>|<stddef\.h>|<stdbool\.h>|<string\.h>|"[a-z_/]+\.h")'
while IFS= read -r line; do
    echo "lib/ includes something it may not: $line"
    fail=1
done < <(grep -rn '^#include' "$root/lib" --include='*.[ch]' | sed 's/^[^:]*:[0-9]*://' | grep -vE "$allowed" | sort -u)
for sym in malloc calloc realloc free printf fprintf sprintf snprintf time clock_gettime gettimeofday abort exit; do
    hits=$(grep -rnwE "$sym[[:space:]]*\(" "$root/lib" --include='*.[ch]' | grep -v '^\s*/\?\*' || true)
    if [ -n "$hits" ]; then
        echo "lib/ calls $sym:"
        echo "$hits"
        fail=1
    fi
done
for h in include/ipsecif/*.h; do
    bad=$(grep -nE '^#include' "$root/$h" | grep -vE '(<stdint\.h>|<stddef\.h>|<stdbool\.h>|"ipsecif/[a-z_]+\.h")' | grep -v 'IPSECIF_OPTS_FILE' || true)
    if [ -n "$bad" ]; then
        echo "$h includes a header a public header may not: $bad"
        fail=1
    fi
done
if [ $fail -eq 0 ]; then
    echo "lib/ and include/ are free of OS, allocator, clock and stdio dependencies"
fi
exit $fail
