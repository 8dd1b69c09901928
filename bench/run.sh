#!/usr/bin/env bash
# Speed of diffusion.c against PyTorch on the same U-Nets, measured back to back
# in one run (clock drift between runs is larger than the differences we care
# about). Usage: bench/run.sh [BUILD_DIR] [preset ...]
# Environment: THREADS (2), STEPS (6), WARMUP (2), MIN_TIME (3 s per inference row).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(fmnist-small fmnist-tiny)
threads=${THREADS:-2}
steps=${STEPS:-6}
warmup=${WARMUP:-2}
min_time=${MIN_TIME:-3}
py=/usr/bin/python3
if ! $py -c 'import torch' 2> /dev/null; then
    echo "bench: PyTorch is not installed (apt-get install python3-torch python3-numpy)" >&2
    exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "# $(date -Iseconds)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')  threads=$threads"
for p in "${presets[@]}"; do
    echo "## $p"
    "$build/bench_unet" --preset "$p" --threads "$threads" --steps "$steps" --warmup "$warmup" \
        --infer-batches 1,64 --min-time "$min_time" | tee -a "$log"
    OPENBLAS_NUM_THREADS=1 $py bench/torch_bench.py --preset "$p" --threads "$threads" \
        --steps "$steps" --warmup "$warmup" --infer-batches 1 64 --min-time "$min_time" | tee -a "$log"
done
echo
echo "| model | row | C img/s | PyTorch img/s | C/PyTorch | C GFLOP/s | C peak MB | PyTorch peak MB |"
echo "|---|---|---|---|---|---|---|---|"
awk '
function val(key,   i, kv) { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
$1 == "c" && $2 == "model" { model = $3 }
$1 == "c" && ($2 == "train" || $2 == "infer") { k = $3 " " $2 " " val("batch"); c[k] = val("img_per_s"); g[k] = val("gflops"); order[++n] = k }
$1 == "torch" && ($2 == "train" || $2 == "infer") { k = $3 " " $2 " " val("batch"); t[k] = val("img_per_s") }
$1 == "c" && $2 ~ /^peak_rss_mb=/ { split($2, kv, "="); cmem[model] = kv[2] }
$1 == "torch" && $2 == "peak_rss" { tmem[val("preset")] = val("mib") }
END {
    for (i = 1; i <= n; i++) {
        k = order[i]; split(k, p, " ")
        r = (t[k] > 0) ? sprintf("%.2fx", c[k] / t[k]) : "?"
        printf "| %s | %s batch %s | %.1f | %.1f | %s | %.0f | %s | %s |\n", p[1], p[2], p[3], c[k], t[k], r, g[k], cmem[p[1]], tmem[p[1]]
    }
}' "$log"
