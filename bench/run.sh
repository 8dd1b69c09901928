#!/usr/bin/env bash
# Speed of diffusion.c against PyTorch on the same U-Nets, measured back to back
# in one run (clock drift between runs is larger than the differences we care
# about). Usage: bench/run.sh [BUILD_DIR] [preset ...]
# Rows: a training step (bench_unet, random data, as bench/torch_bench.py), eval forwards at
# batch 1 and 64, `diffusion train` on Fashion-MNIST against the PyTorch training loop, and
# DDIM-50 through `diffusion sample` against 50 PyTorch forwards of batch 64.
# Where the CPU has bfloat16 products (AVX512_BF16) every row runs again in bfloat16: C with
# --precision bf16 (the convolutions' products), PyTorch under its own CPU autocast (torch_bench.py
# --bf16); the table then has both precisions and the ratios C bf16 / PyTorch fp32 and / PyTorch bf16.
# Presets: fmnist-small and fmnist-tiny by default; rgb64 (3x64x64, DDPM's CIFAR-10 shape at half
# width) on request, e.g. TRAIN_BATCH=32 bench/run.sh build rgb64 (random data only: the rows of
# `diffusion train` and DDIM-50 need Fashion-MNIST's 28x28 images and run for fmnist-* presets).
# Environment: THREADS (2), STEPS (6), WARMUP (2), TRAIN_BATCH (128), MIN_TIME (3 s per inference row), DFN_ISA
# (the instruction set of the C kernels: amx, avx512, avx2 or generic; default the best this CPU has),
# PRECISIONS ("fp32 bf16" where the CPU has bfloat16, else "fp32").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(fmnist-small fmnist-tiny)
threads=${THREADS:-2}
steps=${STEPS:-6}
train_batch=${TRAIN_BATCH:-128}
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
if [ -z "${PRECISIONS:-}" ]; then
    PRECISIONS=fp32
    "$build/bench_unet" --preset fmnist-tiny --steps 0 --infer-batches 0 --precision bf16 > /dev/null 2>&1 &&
        PRECISIONS="fp32 bf16"
fi
echo "# $(date -Iseconds)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')  threads=$threads  kernels=$kernels  precisions=$PRECISIONS"
for p in "${presets[@]}"; do
    echo "## $p"
    for prec in $PRECISIONS; do
        tflag=""
        [ "$prec" = bf16 ] && tflag="--bf16"
        "$build/bench_unet" --preset "$p" --threads "$threads" --steps "$steps" --warmup "$warmup" \
            --train-batch "$train_batch" --infer-batches 1,64 --min-time "$min_time" --precision "$prec" | tee -a "$log"
        OPENBLAS_NUM_THREADS=1 $py bench/torch_bench.py --preset "$p" --threads "$threads" --train-batch "$train_batch" \
            --steps "$steps" --warmup "$warmup" --infer-batches 1 64 --min-time "$min_time" $tflag | tee -a "$log"
    done
    case "$p" in fmnist-*) ;; *) continue ;; esac
    # the trainer itself on real data (data loading, sampling of t and noise,
    # EMA, logging included): images/s from its log.csv, steps 3.. of 8
    run=$(mktemp -d)
    for prec in $PRECISIONS; do
        label=$p
        [ "$prec" = bf16 ] && label=$p+bf16
        "$build/diffusion" train --data fashion-mnist --preset "$p" --out "$run/r" --steps 8 --batch "$train_batch" --force \
            --prediction eps --weighting uniform --warmup 1 --log-every 1 --val-every 0 --samples 0 --save-every 0 \
            --threads "$threads" --precision "$prec" --quiet
        tail -n +4 "$run/r/log.csv" | cut -d, -f6 | sort -g |
            awk -v p="$label" -v b="$train_batch" '{ v[NR] = $1 } END { printf "c train-cli %s batch=%d img_per_s=%.2f\n", p, b, v[int((NR + 1) / 2)] }' |
            tee -a "$log"
        # DDIM with 50 steps through `diffusion sample` (64 images per network call)
        "$build/diffusion" sample --checkpoint "$run/r/model.safetensors" --sampler ddim --steps 50 --n 128 \
            --batch 64 --out "$run/s.png" --threads "$threads" --precision "$prec" --quiet
        t0=$(date +%s.%N)
        "$build/diffusion" sample --checkpoint "$run/r/model.safetensors" --sampler ddim --steps 50 --n 128 \
            --batch 64 --out "$run/s.png" --threads "$threads" --precision "$prec" --quiet
        t1=$(date +%s.%N)
        awk -v p="$label" -v a="$t0" -v b="$t1" 'BEGIN { printf "c ddim50 %s batch=64 img_per_s=%.3f\n", p, 128 / (b - a) }' | tee -a "$log"
    done
    rm -rf "$run"
done
echo
# One table: images/s of C and PyTorch in each precision that ran, and the ratios
# C fp32 / PyTorch fp32, C bf16 / PyTorch fp32 and C bf16 / PyTorch bf16; the
# train-cli row is compared with PyTorch's training step, DDIM-50 with 50 forwards.
awk '
function val(key,   i, kv) { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] } return "" }
function cell(x, fmt) { return x > 0 ? sprintf(fmt, x) : "-" }
function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2fx", a / b) : "-" }
# "<preset>" or "<preset>+bf16": sets model and prec
function parse(label,   k) { k = index(label, "+bf16"); prec = k ? "bf16" : "fp32"; model = k ? substr(label, 1, k - 1) : label }
($1 == "c" || $1 == "torch") && ($2 == "train" || $2 == "infer" || $2 == "train-cli" || $2 == "ddim50") {
    parse($3); k = model " " $2 " " val("batch")
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    v[$1 " " prec " " k] = val("img_per_s")
    if ($1 == "c" && val("gflops") != "") g[prec " " k] = val("gflops")
}
$1 == "c" && $2 == "model" { parse($3) }
$1 == "c" && $2 ~ /^peak_rss_mb=/ { split($2, kv, "="); if (prec == "fp32") cmem[model] = kv[2] }
$1 == "torch" && $2 == "peak_rss" { parse(val("preset")); if (prec == "fp32") tmem[model] = val("mib") }
END {
    print "| model | row | C fp32 img/s | C bf16 img/s | PyTorch fp32 img/s | PyTorch bf16 img/s | C fp32 / PyTorch fp32 | C bf16 / PyTorch fp32 | C bf16 / PyTorch bf16 | C fp32 GFLOP/s | C peak MB | PyTorch peak MB |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        k = order[i]; split(k, p, " ")
        for (q = 1; q <= 2; q++) {
            pr = q == 1 ? "fp32" : "bf16"; tk = v["torch " pr " " k]
            if (p[2] == "train-cli") tk = v["torch " pr " " p[1] " train " p[3]] # the PyTorch reference loop
            if (p[2] == "ddim50") tk = v["torch " pr " " p[1] " infer 64"] / 50  # 50 forwards of batch 64
            t[pr] = tk; c[pr] = v["c " pr " " k]
        }
        row = p[2] == "train-cli" ? "`diffusion train`" : p[2] == "ddim50" ? "DDIM-50" : p[2]
        printf "| %s | %s batch %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p[1], row, p[3],
               cell(c["fp32"], "%.1f"), cell(c["bf16"], "%.1f"), cell(t["fp32"], "%.1f"), cell(t["bf16"], "%.1f"),
               ratio(c["fp32"], t["fp32"]), ratio(c["bf16"], t["fp32"]), ratio(c["bf16"], t["bf16"]),
               cell(g["fp32 " k], "%.0f"), cmem[p[1]], tmem[p[1]]
    }
}' "$log"
