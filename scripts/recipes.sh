#!/usr/bin/env bash
# The recipe study of docs/recipes.md: any row again. A row is a recipe trained
# for a number of optimizer steps (the steps that 10, 30 or 60 minutes of
# training bought on the study's 2-core machine, measured with --calibrate);
# the same steps and seed give the same model, bit for bit, on any machine and
# thread count, so only the minutes depend on the machine.
#
#   scripts/recipes.sh list                          the recipes and their options
#   scripts/recipes.sh calibrate RECIPE              seconds per 100 steps here (alone)
#   scripts/recipes.sh train RECIPE STEPS OUT [OPTIONS]
#                                                    train (resumable: run it again;
#                                                    OPTIONS of diffusion train, e.g.
#                                                    --seed 2 or --precision bf16)
#   scripts/recipes.sh fid CKPT SAMPLER STEPS N OUT [OPTIONS]
#                                                    N samples (seed 7; OPTIONS of
#                                                    diffusion sample, e.g. --no-clip)
#                                                    and their FID against
#                                                    fashion-mnist:train with its
#                                                    floor at the same N
# Environment: BUILD (build), CLASSIFIER (runs/evalclf.safetensors: made by
# `diffusion train-classifier --data fashion-mnist` when missing), THREADS (0).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BUILD:-build}/diffusion"
clf="${CLASSIFIER:-runs/evalclf.safetensors}"
threads="${THREADS:-0}"

# The demo's recipe before the study (eps, uniform weights; train's defaults for
# images are now the winner's, so every recipe names its target and weights),
# then one change each.
base="--data fashion-mnist --preset fmnist-tiny --groups 8 --batch 64 --lr 1e-3 --warmup 100 --lr-min-ratio 0.1 --ema 0.999 --seed 1"
eps="--prediction eps --weighting uniform"
recipe() {
    case "$1" in
        demo)     echo "$base $eps" ;;
        cosine)   echo "$base $eps --schedule cosine" ;;
        v)        echo "$base --prediction v --weighting uniform" ;;
        minsnr)   echo "$base --prediction eps --weighting min-snr --min-snr-gamma 5" ;;
        minsnr-v) echo "$base --prediction v --weighting min-snr --min-snr-gamma 5" ;;
        minsnr-v-attn7) echo "$base --prediction v --weighting min-snr --min-snr-gamma 5 --attn 7" ;;
        drop0)    echo "$base $eps --dropout 0" ;;
        b128)     echo "${base/--batch 64 --lr 1e-3/--batch 128 --lr 1.4e-3} $eps" ;;
        rb2)      echo "$base $eps --res-blocks 2" ;;
        attn7)    echo "$base $eps --attn 7" ;;
        *) echo "scripts/recipes.sh: unknown recipe '$1' (scripts/recipes.sh list)" >&2; return 1 ;;
    esac
}
recipes="demo cosine v minsnr minsnr-v minsnr-v-attn7 drop0 b128 rb2 attn7"

case "${1:-}" in
list)
    for r in $recipes; do printf '%-8s %s\n' "$r" "$(recipe $r)"; done ;;
calibrate)
    out=$(mktemp -d)
    "$bin" train $(recipe "$2") --steps 125 --val-every 0 --samples 0 --log-every 25 --quiet --force \
        --threads "$threads" --out "$out"
    awk -F, '$1 == 25 { a = $7 } $1 == 125 { b = $7 } END { printf "%s: %.1f s per 100 steps, %d steps in 10 minutes\n", r, b - a, 60000 / (b - a) }' \
        r="$2" "$out/log.csv"
    rm -rf "$out" ;;
train)
    args="$(recipe "$2") --steps $3 --val-every 0 --samples 0 --save-every 500 --log-every 50 --threads $threads"
    if [ -f "$4/latest.safetensors" ]; then "$bin" train --out "$4" --resume --steps "$3" --threads "$threads"
    else "$bin" train $args --out "$4" "${@:5}"; fi ;;
fid)
    if [ ! -f "$clf" ]; then
        mkdir -p "$(dirname "$clf")"
        "$bin" train-classifier --data fashion-mnist --out "$clf" --threads "$threads"
    fi
    "$bin" sample --checkpoint "$2" --sampler "$3" --steps "$4" --n "$5" --batch 250 --seed 7 --out "$6" \
        --threads "$threads" --quiet "${@:7}"
    "$bin" eval fid --samples "$6" --data fashion-mnist:train --classifier "$clf" --threads "$threads" ;;
*)
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 2 ;;
esac
