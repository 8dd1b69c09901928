#!/usr/bin/env bash
# fuzz.sh - runs every libFuzzer harness (fuzz/fuzz_*.c, built with -DDFN_FUZZ=ON)
# for SECONDS each, starting from its committed seed corpus and the crashers kept
# in fuzz/regressions/<target>/. New inputs go to BUILD/corpus/<target> (not the
# committed corpus); a crash, leak, timeout or out-of-memory leaves its input in
# BUILD/findings/<target>/ and fails the run: fix it, then copy the input into
# fuzz/regressions/<target>/ so that `make test` replays it from then on.
# Prints one line per target: executions, coverage (edges), corpus size.
# Usage: scripts/fuzz.sh BUILD SECONDS [TARGET...]
set -uo pipefail
build=$1 seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$root"/fuzz/fuzz_*.c; do t=${f##*/fuzz_}; targets+=("${t%.c}"); done
fi
failed=()
printf '%-12s %10s %8s %8s %10s  %s\n' target execs edges features corpus result
for t in "${targets[@]}"; do
    work="$build/corpus/$t" findings="$build/findings/$t"
    mkdir -p "$work" "$findings"
    log="$build/fuzz-$t.log"
    # -rss_limit_mb / -malloc_limit_mb: a header that claims more than the bytes
    # justify fails here (the inputs are at most -max_len bytes)
    "$build/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1200 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" \
        "$work" "$root/fuzz/corpus/$t" "$root/fuzz/regressions/$t" > "$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    result=ok
    if [ $rc -ne 0 ]; then
        result="FAILED (rc $rc, see $log; input in $findings/)"
        failed+=("$t")
    fi
    printf '%-12s %10s %8s %8s %10s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzzing found problems in: ${failed[*]}" >&2
    for t in "${failed[@]}"; do grep -m3 -E "ERROR|fuzz check failed|SUMMARY" "$build/fuzz-$t.log" >&2; done
    exit 1
fi
