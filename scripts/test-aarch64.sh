#!/usr/bin/env bash
# test-aarch64.sh - the library and a named subset of the suite cross-compiled
# for 64-bit ARM (Debian's gcc-aarch64-linux-gnu, the arm64 libraries of a
# multiarch system) and run under qemu-user. The subset is the numerics (every
# layer against finite differences, the U-Nets - attention included - and the
# MLP against the PyTorch reference tensors, checkpoints, the samplers' API,
# determinism across thread counts) and the parsers. Left out: test_attention
# (its large shapes take 10 minutes under emulation; test_torch_reference
# covers attention), and the tests that exec the program (they need
# binfmt_misc, which CI lacks).
# Usage: scripts/test-aarch64.sh [BUILD]   (root or sudo: installs packages)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-aarch64}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -qq
fi
bash scripts/install-deps.sh .ci/packages-aarch64
tests=(test_layers test_conv2d test_torch_reference test_model test_checkpoint
       test_classifier test_sample_api test_sample_order test_schedule test_sde test_objective
       test_rng test_safetensors test_npy test_png test_data test_pipeline)
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release -DDFN_MPI=OFF > /dev/null
cmake --build "$build" -j "$(nproc)" --target "${tests[@]}" diffusion-cli
echo "== aarch64 under qemu-user: $(qemu-aarch64 --version | head -1)"
file "$build/test_layers" | sed 's/,.*//'
regex="^($(IFS='|'; echo "${tests[*]}"))\$"
cd "$build" && ctest -R "$regex" --output-on-failure -j "$(nproc)"
