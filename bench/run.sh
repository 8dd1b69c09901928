#!/usr/bin/env bash
# Speed of diffusion.c against PyTorch on the same U-Nets, measured back to back
# in one run (clock drift between runs is larger than the differences we care
# about). Usage: bench/run.sh [BUILD_DIR] [preset ...]
# Rows: a training step (bench_unet, random data, as bench/torch_bench.py), eval forwards at
# batch 1 and 64, `diffusion train` on Fashion-MNIST against the PyTorch training loop, and
# DDIM-50 through `diffusion sample` against 50 PyTorch forwards of batch 64.
# Environment: THREADS (2), STEPS (6), WARMUP (2), MIN_TIME (3 s per inference row), DFN_ISA
# (the instruction set of the C kernels: avx512, avx2 or generic; default the best this CPU has).
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
kernels=$("$build/diffusion" --version | sed -n 's/.*(kernels: \([a-z0-9]*\);.*/\1/p')
echo "# $(date -Iseconds)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')  threads=$threads  kernels=$kernels"
for p in "${presets[@]}"; do
    echo "## $p"
    "$build/bench_unet" --preset "$p" --threads "$threads" --steps "$steps" --warmup "$warmup" \
        --infer-batches 1,64 --min-time "$min_time" | tee -a "$log"
    OPENBLAS_NUM_THREADS=1 $py bench/torch_bench.py --preset "$p" --threads "$threads" \
        --steps "$steps" --warmup "$warmup" --infer-batches 1 64 --min-time "$min_time" | tee -a "$log"
    # the trainer itself on real data (data loading, sampling of t and noise,
    # EMA, logging included): images/s from its log.csv, steps 3.. of 8
    run=$(mktemp -d)
    "$build/diffusion" train --data fashion-mnist --preset "$p" --out "$run/r" --steps 8 --batch 128 \
        --prediction eps --weighting uniform --warmup 1 --log-every 1 --val-every 0 --samples 0 --save-every 0 --threads "$threads" --quiet
    tail -n +4 "$run/r/log.csv" | cut -d, -f6 | sort -g |
        awk -v p="$p" '{ v[NR] = $1 } END { printf "c train-cli %s batch=128 img_per_s=%.2f\n", p, v[int((NR + 1) / 2)] }' |
        tee -a "$log"
    # DDIM with 50 steps through `diffusion sample` (64 images per network call)
    "$build/diffusion" sample --checkpoint "$run/r/model.safetensors" --sampler ddim --steps 50 --n 128 \
        --batch 64 --out "$run/s.png" --threads "$threads" --quiet
    t0=$(date +%s.%N)
    "$build/diffusion" sample --checkpoint "$run/r/model.safetensors" --sampler ddim --steps 50 --n 128 \
        --batch 64 --out "$run/s.png" --threads "$threads" --quiet
    t1=$(date +%s.%N)
    awk -v p="$p" -v a="$t0" -v b="$t1" 'BEGIN { printf "c ddim50 %s batch=64 img_per_s=%.3f\n", p, 128 / (b - a) }' | tee -a "$log"
    rm -rf "$run"
done
echo
echo "| model | row | C img/s | PyTorch img/s | C/PyTorch | C GFLOP/s | C peak MB | PyTorch peak MB |"
echo "|---|---|---|---|---|---|---|---|"
awk '
function val(key,   i, kv) { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
$1 == "c" && $2 == "model" { model = $3 }
$1 == "c" && ($2 == "train" || $2 == "infer") { k = $3 " " $2 " " val("batch"); c[k] = val("img_per_s"); g[k] = val("gflops"); order[++n] = k }
$1 == "torch" && ($2 == "train" || $2 == "infer") { k = $3 " " $2 " " val("batch"); t[k] = val("img_per_s") }
$1 == "c" && ($2 == "train-cli" || $2 == "ddim50") { k = $3 " " $2 " " val("batch"); c[k] = val("img_per_s"); g[k] = 0; order[++n] = k }
$1 == "c" && $2 ~ /^peak_rss_mb=/ { split($2, kv, "="); cmem[model] = kv[2] }
$1 == "torch" && $2 == "peak_rss" { tmem[val("preset")] = val("mib") }
END {
    for (i = 1; i <= n; i++) {
        k = order[i]; split(k, p, " ")
        tk = t[k]
        if (p[2] == "train-cli") tk = t[p[1] " train 128"]              # the PyTorch reference loop
        if (p[2] == "ddim50") tk = t[p[1] " infer 64"] / 50            # 50 forwards of batch 64
        if (p[2] == "ddim50" || p[2] == "train-cli") t[k] = tk
        r = (tk > 0) ? sprintf("%.2fx", c[k] / tk) : "?"
        gf = g[k] > 0 ? sprintf("%.0f", g[k]) : "-"
        printf "| %s | %s batch %s | %.1f | %.1f | %s | %s | %s | %s |\n", p[1], p[2], p[3], c[k], t[k], r, gf, cmem[p[1]], tmem[p[1]]
    }
}' "$log"
