#!/usr/bin/env bash
# docs/gallery.md from a full run of scripts/gallery.sh: every picture, and
# what each command printed. usage: scripts/gallery-md.sh GALLERY_DIR SECONDS
set -euo pipefail
dir=$1
secs=$2
rel=${dir#docs/}
img() { echo "![$2]($rel/$1)"; }
printed() {
    echo
    echo '<details><summary>commands and what they printed</summary>'
    echo
    echo '```'
    cat "$dir/$1/log.txt"
    echo '```'
    echo '</details>'
    echo
}
cat <<EOF
# Gallery: the seeds' experiments

Every picture below is made by \`make gallery\` (scripts/gallery.sh), one command per step, from a
fresh build; this run took $secs s on $(nproc) cores. The numbers are what the commands printed. A
reduced run is part of the test suite (tests/gallery_check.sh), which checks the printed numbers.

## 000: a 50-dimensional curve, diffused and generated

Seed 000 draws a signal of 50 samples (a weighted sum of a few sinusoids of random frequency,
\`toy:curves\`) through T = 100 steps of forward diffusion (\`diffusion forward\`): one curve at
chosen steps, and the histogram of all values drifting to N(0, 1). The table printed beside it holds
the RMS of the simulated chain next to the closed form sqrt(abar_t E[x0^2] + 1 - abar_t).

$(img curves/forward_curves.png "one curve through the forward process") $(img curves/forward_hist.png "values drifting to N(0, 1)")

The beta schedules at the same T: beta_t, abar_t and the SNR (seed 003's picture of beta).

$(img curves/schedule_beta.png "beta_t") $(img curves/schedule_abar.png "abar_t") $(img curves/schedule_snr.png "SNR")

The covariance view (\`diffusion analyze\`): the covariance of the curves' dimensions, the seed's
similarity matrix (the logistic function of minus the distance between two dimensions), white noise
of the same shape, and the eigenvalue spectra: the signal is low-rank, noise is flat. Colored noise,
white noise mapped through U S^(1/2), has the data's covariance and spectrum: a Gaussian generator,
the baseline. An MLP eps-model trained with T = 100 (DDPM sampling) is compared with it and with
held-out data (the floor) by MMD^2, the sliced Wasserstein distance and the spread of each sample's
RMS (which tells curves of a fixed make from a Gaussian with their covariance).

$(img curves/covariance.png "covariance of the data") $(img curves/similarity.png "similarity matrix")

$(img curves/noise_covariance.png "covariance of white noise") $(img curves/colored_covariance.png "covariance of colored noise")

$(img curves/spectrum.png "eigenvalue spectra") $(img curves/samples.png "data, colored noise and the model")
$(printed curves)

## 000: a small U-Net on a handful of images

Eight Fashion-MNIST training images (\`--limit 8\`), their forward process, the fmnist-tiny U-Net
trained on them alone, new samples (DDIM, 50 steps) and the reverse trajectory of one sample.

$(img few/forward_strip.png "the 8 images through the forward process") $(img few/forward_hist.png "their pixel values drifting to N(0, 1)")

$(img few/samples.png "samples") $(img few/trajectory.png "the reverse trajectory of one sample")
$(printed few)

## 002: Langevin dynamics with an exact score

p = 0.8 N(-4, 0.5^2) + 0.2 N(4, 0.5^2). Far from the valley between the modes the score does not see
the weights: plain Langevin (x += c score + sqrt(2c) z) started uniformly on [-8, 8] keeps the split
of its start. Annealed Langevin (Song & Ermon 2019) starts from the score of p blurred by noise
sigma = 10 and lowers sigma to 0.01; with fine enough levels it recovers 0.8 / 0.2 (with 10 coarse
levels the split freezes between two levels where the blurred modes overlap, and leans toward 1/2).

$(img langevin/langevin_plain.png "plain Langevin") $(img langevin/langevin_annealed.png "annealed Langevin")
$(printed langevin)

## 002: NCSN, denoising score matching and annealed Langevin

An MLP learns sigma * score on a VE process with the weighting lambda(sigma) = sigma^2 (seed 002,
eq. 164) from samples of a two-component 2-D mixture (weights 0.7 / 0.3, standard deviation 0.25);
annealed Langevin draws from the learned score. Printed: each component's share, mean and spread
beside the truth (in brackets), then the distances of the same samples to fresh data.

$(img ncsn/samples.png "annealed Langevin samples") $(img ncsn/paths.png "Langevin paths")
$(printed ncsn)

## 001: one model, five samplers

One eps-model of the two moons (discrete schedule, T = 1000) sampled by DDPM (1000 steps), DDIM (50),
Euler-Maruyama on the reverse SDE (200), the probability-flow ODE by adaptive RK45, and
DPM-Solver++(2M) (20). The reverse SDE and the ODE see the discrete schedule as the VP SDE with the
same marginals (log SNR linear between steps). Left: 2000 samples; right: the paths of 24.

| sampler | samples | paths |
|---|---|---|
$(for s in ddpm ddim euler-maruyama ode-rk45 dpm++2m; do echo "| $s | $(img samplers/$s.png "$s") | $(img samplers/${s}_paths.png "$s paths") |"; done)
$(printed samplers)
EOF
