#!/usr/bin/env bash
# The seeds' experiments, each one command, with their pictures (`make gallery`):
#   000 curves      forward diffusion, covariance / SVD, colored-noise baseline,
#                   an MLP eps-model (T = 100) beside real curves and the baseline
#   000 few images  a small U-Net on 8 Fashion-MNIST items: samples and the
#                   reverse trajectory of one sample step by step
#   002 Langevin    the exact score of a 0.8 / 0.2 mixture: plain Langevin keeps
#                   its starting split, annealed Langevin recovers the weights
#   002 NCSN        denoising score matching, lambda(sigma) = sigma^2, on a 2-D
#                   mixture; annealed Langevin from the learned score
#   001 samplers    one 2-D model sampled by DDPM, DDIM, Euler-Maruyama, the
#                   probability-flow ODE and DPM-Solver++, with their paths
#
# usage: scripts/gallery.sh [--quick|--smoke] [OUT] [BUILD]
#   default: pictures in docs/gallery/, docs/gallery.md, runs in runs/gallery/
#   --quick: the reduced run of the test suite (tests/gallery_check.sh), all in OUT
#   --smoke: smaller still, for the sanitizer build (the code paths, not the numbers)
# Environment: THREADS (default all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=full
case "${1:-}" in --quick) mode=quick; shift ;; --smoke) mode=smoke; shift ;; esac
if [ "$mode" = full ]; then
    out=${1:-docs/gallery}
    runs=runs/gallery
else
    out=${1:?"--$mode needs an output directory"}
    runs=$out/runs
fi
build=${2:-build}
bin="$build/diffusion"
threads=${THREADS:-0}
mkdir -p "$out" "$runs"
log=/dev/null
t0=$(date +%s)

# sizes: full / quick / smoke
pick() { case $mode in full) echo "$1" ;; quick) echo "$2" ;; smoke) echo "$3" ;; esac; }
curve_steps=$(pick 8000 200 20)
few_steps=$(pick 2000 20 2)
ncsn_steps=$(pick 2000 300 20)
moons_steps=$(pick 3000 300 20)
n_vec=$(pick 2000 1000 64)
n_2d=$(pick 2000 200 64)
moons_T=$(pick 1000 1000 100)
em_steps=$(pick 200 200 20)
n_img=$(pick 16 4 2)
langevin_flag=$(pick "" --quick --smoke)
ddim_steps=$(pick 50 50 5)
levels=$(pick "10 100" "10 100" "3 20")

# run CMD...: print it, run it, keep what it prints in the log and on screen
run() {
    echo "\$ diffusion ${*:2}" | sed "s|$bin|diffusion|" >> "$log"
    echo "+ ${*}"
    local t=$(date +%s%N)
    "$@" 2>&1 | tee -a "$log"
    echo >> "$log"
    local ms=$(( ($(date +%s%N) - t) / 1000000 ))
    printf '  (%d.%d s)\n' $((ms / 1000)) $((ms % 1000 / 100))
}
# section DIR TITLE: the experiment's pictures and printed numbers (DIR/log.txt) go to $out/DIR
section() {
    mkdir -p "$out/$1"
    log="$out/$1/log.txt"
    : > "$log"
    printf '\n== %s\n' "$2"
}
common=(--threads "$threads" --quiet --force --val-every 0 --samples 0)

section curves "000 curves"
run "$bin" forward toy:curves --out "$out/curves" --T 100 --n "$n_vec" --seed 1
run "$bin" train --data toy:curves --preset mlp-curves --T 100 --beta-start 0.001 --beta-end 0.2 \
    --steps "$curve_steps" --batch 128 --lr 1e-3 --out "$runs/curves" --seed 1 "${common[@]}"
run "$bin" analyze toy:curves --out "$out/curves" --n 20000 --samples "$n_vec" --seed 1 \
    --checkpoint "$runs/curves/model.safetensors" --sampler ddpm --threads "$threads"

section few "000 few images"
run "$bin" forward fashion-mnist --limit 8 --show 8 --out "$out/few" --T 100 --times 0,5,10,25,50,100 --seed 1
run "$bin" train --data fashion-mnist --limit 8 --batch 8 --preset fmnist-tiny --groups 8 --steps "$few_steps" \
    --lr 1e-3 --ema 0.995 --prediction eps --weighting uniform --warmup -1 --out "$runs/few" --seed 1 "${common[@]}"
run "$bin" sample --checkpoint "$runs/few/model.safetensors" --sampler ddim --steps "$ddim_steps" --n "$n_img" \
    --cols 8 --out "$out/few/samples.png" --trajectory "$out/few/trajectory.png" --trajectory-samples 1 \
    --trajectory-frames 11 --seed 3 --threads "$threads" --quiet

section langevin "002 Langevin on an exact mixture score"
echo "\$ example_langevin_mixture $out/langevin $langevin_flag" >> "$log"
"$build/example_langevin_mixture" "$out/langevin" $langevin_flag 2>&1 | tee -a "$log"

section ncsn "002 NCSN: denoising score matching, lambda(sigma) = sigma^2, annealed Langevin"
cat > "$runs/ncsn_mixture.json" <<'EOF'
{"weights": [0.7, 0.3], "means": [[-1.5, 0.0], [1.5, 0.5]], "stds": [0.25, 0.25]}
EOF
run "$bin" train --data "mixture:$runs/ncsn_mixture.json" --n 20000 --preset mlp-2d --sde ve \
    --prediction score --weighting sigma2 --steps "$ncsn_steps" --batch 256 --lr 1e-3 --out "$runs/ncsn" \
    --seed 1 "${common[@]}"
for f in "$out/ncsn/samples.png" "$runs/ncsn/samples.csv"; do # the same samples, a picture and numbers
    run "$bin" sample --checkpoint "$runs/ncsn/model.safetensors" --sampler annealed-langevin \
        --levels ${levels% *} --steps-per-level ${levels#* } --n "$n_2d" --out "$f" --seed 3 --threads "$threads" \
        --quiet $([ "${f%.png}" != "$f" ] && echo --trajectory "$out/ncsn/paths.png" --trajectory-samples 32)
done
echo "\$ awk: each component's share, mean and standard deviation (x1 < 0: the first)" >> "$log"
awk -F, '{ c = $1 > 0; n[c]++; sx[c] += $1; sy[c] += $2; qx[c] += $1 * $1; qy[c] += $2 * $2 }
    END { split("0.7 -1.5 0.0 0.3 1.5 0.5", t, " ")
          for (c = 0; c < 2; c++) printf "component %d: weight %.3f (%.1f), mean (%.3f, %.3f) (%.1f, %.1f), sd (%.3f, %.3f) (0.25)\n",
              c + 1, n[c] / NR, t[3 * c + 1], sx[c] / n[c], sy[c] / n[c], t[3 * c + 2], t[3 * c + 3],
              sqrt(qx[c] / n[c] - (sx[c] / n[c]) ^ 2), sqrt(qy[c] / n[c] - (sy[c] / n[c]) ^ 2) }' \
    "$runs/ncsn/samples.csv" | tee -a "$log"
echo >> "$log"
run "$bin" eval vectors --samples "$runs/ncsn/samples.csv" --data "mixture:$runs/ncsn_mixture.json" \
    --n "$n_2d" --seed 3 --threads "$threads"

section samplers "001 one 2-D model, five samplers"
run "$bin" train --data toy:moons --preset mlp-2d --T "$moons_T" --steps "$moons_steps" --batch 256 --lr 1e-3 \
    --out "$runs/moons" --seed 1 "${common[@]}"
for spec in ddpm:$moons_T ddim:50 euler-maruyama:$em_steps ode-rk45:0 dpm++2m:20; do
    s=${spec%%:*}
    k=${spec##*:}
    run "$bin" sample --checkpoint "$runs/moons/model.safetensors" --sampler "$s" --steps "$k" --n "$n_2d" \
        --out "$out/samplers/$s.png" --trajectory "$out/samplers/${s}_paths.png" --trajectory-samples 24 \
        --trajectory-frames 20 --seed 3 --threads "$threads" --quiet
    run "$bin" eval swd --checkpoint "$runs/moons/model.safetensors" --data toy:moons --sampler "$s" \
        --steps "$k" --n "$n_2d" --seed 3 --threads "$threads"
done

secs=$(( $(date +%s) - t0 ))
echo "gallery: $mode run in $secs s ($(nproc) cores)"
[ "$mode" = full ] || exit 0
bash scripts/gallery-md.sh "$out" "$secs" > docs/gallery.md.tmp
mv docs/gallery.md.tmp docs/gallery.md
echo "wrote docs/gallery.md"
