#!/usr/bin/env bash
# memcheck.sh - a reduced suite under valgrind's memcheck, with the portable
# kernels (DFN_ISA=generic: valgrind does not decode AVX-512). Memcheck finds
# what AddressSanitizer cannot: reads of memory never written (a sampler that
# used an unwritten buffer slipped past ASan). Fails on any error.
# Usage: scripts/memcheck.sh BUILD [TEST...]
set -uo pipefail
build=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
# Quick tests that reach every module: checkpoints, pipeline and samplers,
# the data loaders, layers and models forward and backward, the trainer.
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=(test_checkpoint test_pipeline test_sample_api test_sample_order test_layers
    test_model test_classifier test_train test_data test_npy test_safetensors test_png test_schedule
    test_sde test_objective test_nll test_fid)
export DFN_ISA=generic OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive DFN_BIN="$build/diffusion"
failed=()
cd "$root"
for t in "${tests[@]}"; do
    start=$(date +%s)
    log="$build/memcheck-$t.log"
    valgrind --tool=memcheck --error-exitcode=99 --errors-for-leak-kinds=none --track-origins=yes \
        --suppressions="$root/tests/valgrind.supp" --quiet "$build/$t" > "$log" 2>&1
    rc=$?
    errors=$(grep -c "^==[0-9]*== [A-Z].*\(uninitialised\|Invalid\|overlap\|mismatched\)" "$log")
    printf '%-22s rc %-3s %3s s  %s\n' "$t" "$rc" "$(( $(date +%s) - start ))" \
        "$([ $rc -eq 0 ] && echo clean || echo "FAILED ($errors errors, see $log)")"
    [ $rc -eq 0 ] || failed+=("$t")
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "memcheck: errors in ${failed[*]}" >&2
    for t in "${failed[@]}"; do grep -m 20 -A 12 "^==[0-9]*== [A-Z]" "$build/memcheck-$t.log" >&2; done
    exit 1
fi
echo "memcheck: ${#tests[@]} tests clean"
