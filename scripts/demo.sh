#!/usr/bin/env bash
# Build the library and run examples/loopback: two contexts in one process
# exchange ESP over an IPv4 and an IPv6 tunnel. Installs what it needs.
set -euo pipefail

cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

bash scripts/deps.sh

echo "building (log: build/demo-build.log)"
mkdir -p build
if ! {
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIPSECIF_BUILD_EXAMPLES=ON &&
        cmake --build build -j "$JOBS" --target loopback
} >build/demo-build.log 2>&1; then
    cat build/demo-build.log
    echo "demo: build failed" >&2
    exit 1
fi

echo
./build/examples/loopback/loopback
