#!/usr/bin/env bash
# The test suite: build and unit tests, sanitizers, valgrind, docs, format,
# benchmark smoke run. Installs what it needs (scripts/deps.sh).
#
# Stages:
#   build      build/ (RelWithDebInfo, -Werror) and ctest
#   asan       build-asan/ (clang, AddressSanitizer + UBSan) and ctest
#              Both ctest runs include the namespace tests (labels integration
#              and interop: the example router against scapy's ESP and
#              tshark); they need root and report "skipped" without it.
#   fuzz       each libFuzzer target of build-asan/ for FUZZ_SECONDS (default 30)
#   valgrind   the unit tests of build/ under valgrind memcheck
#   docs       Doxygen, warnings are errors
#   format     clang-format check of lib/ include/ ports/ test/ examples/ bench/
#   bench      bench_esp --quick, bench_frag --quick, then bench/compare.sh with
#              DURATION=2 (ipsecifd against strongSwan kernel-libipsec and
#              wireguard-go, about a minute; needs root, skipped without).
#              Figures only, nothing asserted on time: it fails only when a
#              tunnel cannot be set up.
#   firmware   scripts/firmware.sh: lib/, the crypto backend and the lwIP port
#              cross-compiled for Cortex-M4 without a warning; sizes printed
#
# The last line is "N passed, N failed": N counts the ctest tests of the
# three test runs, one per fuzz target, plus one check each for a failed
# build and for the docs, format, bench and firmware stages. The exit status is
# non-zero when anything failed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

bash scripts/deps.sh

total_pass=0
total_fail=0
summary=()

# ctest prints "NN% tests passed, F tests failed out of T"; take F and T.
count_ctest() {
    local log=$1 line
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 ||
        true)
    if [ -z "$line" ]; then
        echo "0 0"
        return
    fi
    local failed out
    failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
    out=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/')
    echo "$((out - failed)) $failed"
}

# record STAGE RC PASS FAIL SECONDS
record() {
    local stage=$1 rc=$2 pass=$3 fail=$4 secs=$5 result=ok
    if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
        # The stage failed outside the counted tests (build error, crash of ctest ...).
        fail=1
    fi
    if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ]; then
        result=FAILED
    fi
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    summary+=("$(printf '%-9s %-7s %5d passed %4d failed %5ds' "$stage" "$result" "$pass" "$fail" \
        "$secs")")
}

# run_stage NAME FUNCTION: runs the function in a subshell with errexit on,
# without letting its failure end this script. A function may write
# "PASS FAIL" to $STAGE_COUNTS; otherwise it counts as one check.
run_stage() {
    local name=$1 fn=$2 start rc counts pass fail
    echo
    echo "==== $name ===="
    start=$(date +%s)
    STAGE_COUNTS=$(mktemp)
    export STAGE_COUNTS
    set +e
    (
        set -euo pipefail
        "$fn"
    )
    rc=$?
    set -e
    counts=$(cat "$STAGE_COUNTS")
    rm -f "$STAGE_COUNTS"
    if [ -n "$counts" ]; then
        read -r pass fail <<<"$counts"
    elif [ "$rc" -eq 0 ]; then
        pass=1
        fail=0
    else
        pass=0
        fail=1
    fi
    record "$name" "$rc" "$pass" "$fail" "$(($(date +%s) - start))"
    if [ "$rc" -ne 0 ]; then
        echo "==== $name: FAILED (exit $rc) ===="
    fi
}

# ctest_in DIR [ARGS...]: run ctest, store the counts, fail like ctest.
ctest_in() {
    local dir=$1 log rc
    shift
    log=$(mktemp)
    set +e
    # Without include(CTest) there is no DartConfiguration.tcl; ctest says so on every
    # -T run, harmlessly.
    (cd "$dir" && ctest --output-on-failure --no-tests=error -j "$JOBS" "$@") 2>&1 |
        grep --line-buffered -v 'DartConfiguration.tcl' | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    count_ctest "$log" >"$STAGE_COUNTS"
    rm -f "$log"
    return "$rc"
}

configure_build() {
    local dir=$1
    shift
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIPSECIF_WERROR=ON "$@"
    cmake --build "$dir" -j "$JOBS"
}

stage_build() {
    configure_build build -DIPSECIF_SANITIZE=OFF -DIPSECIF_BUILD_TESTS=ON \
        -DIPSECIF_BUILD_BENCH=ON -DIPSECIF_BUILD_EXAMPLES=ON
    ctest_in build
}

stage_asan() {
    # The benchmark replaces malloc, which the sanitizer runtime owns: leave it out.
    CC=clang configure_build build-asan -DCMAKE_C_COMPILER=clang -DIPSECIF_SANITIZE=ON \
        -DIPSECIF_BUILD_TESTS=ON -DIPSECIF_BUILD_BENCH=OFF -DIPSECIF_BUILD_EXAMPLES=ON \
        -DIPSECIF_FUZZ=ON
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest_in build-asan
}

stage_valgrind() {
    local rc=0 f
    rm -f build/Testing/Temporary/MemoryChecker.*.log
    ctest_in build -T memcheck -L 'unit|example' \
        --overwrite MemoryCheckCommand="$(command -v valgrind)" \
        --overwrite "MemoryCheckCommandOptions=--error-exitcode=1 --leak-check=full \
--errors-for-leak-kinds=definite,indirect --track-origins=yes" || rc=$?
    if [ "$rc" -ne 0 ]; then
        for f in build/Testing/Temporary/MemoryChecker.*.log; do
            if [ -f "$f" ] && grep -qE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]' \
                "$f"; then
                echo "---- $f"
                cat "$f"
            fi
        done
    fi
    return "$rc"
}

stage_docs() {
    # Doxygen runs with WARN_AS_ERROR=FAIL_ON_WARNINGS (docs/Doxyfile.in).
    cmake --build build --target docs
}

stage_format() {
    local f n=0 bad=()
    while IFS= read -r f; do
        n=$((n + 1))
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            bad+=("$f")
        fi
    done < <(find lib include ports test examples bench -type f \( -name '*.c' -o -name '*.h' \) \
        2>/dev/null | sort)
    if [ "$n" -eq 0 ]; then
        echo "no sources found"
        return 1
    fi
    if [ ${#bad[@]} -ne 0 ]; then
        echo "not clang-formatted (fix: clang-format -i FILE):"
        printf '  %s\n' "${bad[@]}"
        echo "first differences:"
        clang-format --dry-run -Werror "${bad[@]}" 2>&1 | head -n 30 || true
        return 1
    fi
    echo "$n files formatted correctly"
}

# Each libFuzzer target of build-asan/ runs for FUZZ_SECONDS from its seed
# corpus (test/fuzz/corpus/<name>); new inputs go to a scratch directory.
stage_fuzz() {
    local exe name seeds work f rc=0 n=0 pass=0 fail=0
    for exe in build-asan/test/fuzz_*; do
        [ -x "$exe" ] || continue
        n=$((n + 1))
        name=$(basename "$exe")
        seeds=test/fuzz/corpus/${name#fuzz_}
        work=$(mktemp -d)
        echo "-- $name, ${FUZZ_SECONDS}s"
        if [ -d "$seeds" ]; then
            set -- "$work" "$seeds"
        else
            set -- "$work"
        fi
        if "$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=4096 \
            -artifact_prefix="$work/" -print_final_stats=1 "$@" >"$work.log" 2>&1; then
            pass=$((pass + 1))
            grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$work.log" || true
        else
            fail=$((fail + 1))
            rc=1
            tail -n 60 "$work.log"
            # Keep what reproduces the failure: build-asan/fuzz-artifacts/<target>/.
            mkdir -p "build-asan/fuzz-artifacts/$name"
            for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
                if [ -f "$f" ]; then
                    cp "$f" "build-asan/fuzz-artifacts/$name/"
                    echo "reproducer: build-asan/fuzz-artifacts/$name/$(basename "$f") ($(wc -c <"$f") bytes):"
                    od -An -tx1 "$f" | head -n 20
                fi
            done
        fi
        rm -rf "$work" "$work.log"
    done
    if [ "$n" -eq 0 ]; then
        echo "no fuzz targets built"
        pass=1
    fi
    echo "$pass $fail" >"$STAGE_COUNTS"
    return "$rc"
}

stage_bench() {
    local rc=0
    ./build/bench/bench_esp --quick
    ./build/bench/bench_frag --quick
    DURATION=2 BUILD_DIR=build bash bench/compare.sh || rc=$?
    if [ "$rc" -eq 77 ]; then
        echo "bench/compare.sh skipped"
        rc=0
    fi
    return "$rc"
}

stage_firmware() {
    bash scripts/firmware.sh build-firmware
}

run_stage build stage_build
run_stage asan stage_asan
run_stage fuzz stage_fuzz
run_stage valgrind stage_valgrind
run_stage docs stage_docs
run_stage format stage_format
run_stage bench stage_bench
run_stage firmware stage_firmware

echo
echo "==== summary ===="
for line in "${summary[@]}"; do
    echo "$line"
done
echo "$total_pass passed, $total_fail failed"
if [ "$total_fail" -ne 0 ]; then
    exit 1
fi
