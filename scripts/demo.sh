#!/usr/bin/env bash
# The main job (`make demo`): train the fmnist-tiny U-Net on Fashion-MNIST for a
# few minutes on the CPU and write a sample grid, the loss curve and a 2-D toy
# run, all in runs/. Environment: STEPS (default 1000), THREADS (all cores).
# The U-Net's recipe is train's default for images, the winner of the recipe
# study (docs/recipes.md): fmnist-fast, v-prediction with min-SNR-5 weights,
# 64 images a step, AdamW lr 1e-3 after 100 warm-up steps, EMA 0.999.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$build/diffusion"
steps=${STEPS:-1000}
threads=${THREADS:-0}
mkdir -p runs
echo "== 1/2: a U-Net on Fashion-MNIST ($steps steps of 64 images; runs/fmnist)"
"$bin" train --data fashion-mnist --out runs/fmnist --force --steps "$steps" \
    --val-every 500 --val-batches 2 --sample-every 500 --samples 64 --log-every 50 \
    --threads "$threads" --seed 1
echo "== 2/2: an MLP on two moons (runs/moons)"
"$bin" train --data toy:moons --out runs/moons --force --steps 3000 --batch 256 --lr 1e-3 \
    --warmup 100 --val-every 1000 --log-every 500 --samples 2000 --threads "$threads" --seed 1
echo
echo "pictures:"
echo "  runs/fmnist/samples/final.png   64 generated clothes (DPM-Solver++(2M), 20 steps, EMA weights)"
echo "  runs/fmnist/loss.png            training and validation loss"
echo "  runs/moons/samples/final.png    2000 samples over the data"
