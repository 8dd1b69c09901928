#!/usr/bin/env bash
# The Fashion-MNIST measurements and pictures of docs/control.md: class-guided
# sampling (the share of samples the evaluation classifier assigns to the
# requested class, and the FID, per scale, for classifier-free and classifier
# guidance), DDIM inversion's reconstruction error, and the README pictures
# (a class-guided grid, an inpainting strip, an SDEdit strip, interpolation
# strips). Needs a model trained with --cond, an evaluation classifier
# (train-classifier) and a noisy one (train-classifier --noisy):
#   scripts/control-study.sh build COND.safetensors EVAL.safetensors NOISY.safetensors [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1 model=$2 eval_clf=$3 noisy=$4 out=${5:-docs}
bin="$build/diffusion"
mkdir -p "$out"
echo "== guidance: 1000 samples (100 per class) per method and scale, DDIM 50"
"$build/example_guidance_study" "$model" "$eval_clf" "$noisy" 100 50 "$out/control_guided"
echo "== DDIM inversion of 200 test images, then DDIM back"
for steps in 50 200; do
    "$bin" invert --checkpoint "$model" --input fashion-mnist:test --n 200 --steps "$steps" \
        --out "/tmp/dfn_inverted_$steps.npy" --quiet
done
echo "== pictures"
"$bin" inpaint --checkpoint "$model" --input fashion-mnist:test --n 6 --mask docs/mask_center.png \
    --sampler repaint --steps 250 --out "$out/control_inpaint.png" --quiet
"$bin" inpaint --checkpoint "$model" --input fashion-mnist:test --n 6 --mask docs/mask_center.png \
    --sampler ddim --steps 50 --out "$out/control_inpaint_replace.png" --quiet
"$bin" edit --checkpoint "$model" --input fashion-mnist:test --n 6 --strength 0.2,0.4,0.6,0.8,1.0 \
    --steps 50 --out "$out/control_sdedit.png" --quiet
"$bin" interpolate --checkpoint "$model" --input fashion-mnist:test --input-b fashion-mnist:test \
    --frames 8 --steps 50 --out "$out/control_interp_inverted.png" --quiet
"$bin" interpolate --checkpoint "$model" --frames 8 --steps 50 --seed 3 \
    --out "$out/control_interp_random.png" --quiet
ls -l "$out"/control_*.png
