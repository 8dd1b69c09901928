#!/usr/bin/env bash
# The gallery's reduced run (scripts/gallery.sh --quick), and its printed numbers
# checked against what the seeds say must happen:
#   - 002: plain Langevin keeps its uniform start's split (small-mode weight
#     above 0.35), annealed Langevin with fine levels recovers 0.8 / 0.2 (each
#     within 0.05);
#   - 000: colored noise has the data's covariance (off by at most 1.5 x what
#     sampling alone gives) and spectrum (top eigenvalues within 5 x sampling);
#     it is closer to the data than white noise, held-out data closer still;
#     the forward chain ends at N(0, 1) (Kolmogorov-Smirnov below 0.02) with the
#     closed form's RMS (within 2%) at every t drawn;
#   - 001: every sampler's sliced Wasserstein distance is finite;
#   - every picture is a PNG.
# With --smoke (the sanitizer build) the same commands run smaller and only
# the pictures and the printed lines are checked.
# usage: tests/gallery_check.sh --quick|--smoke OUT BUILD
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1 out=$2 build=$3
rm -rf "$out"
THREADS=2 bash scripts/gallery.sh "$mode" "$out" "$build" > "$out.stdout" 2>&1 || {
    cat "$out.stdout"
    echo "FAIL: scripts/gallery.sh $mode failed"
    exit 1
}
fail=0
check() { # check DESCRIPTION AWK-CONDITION VALUES...
    local what=$1 cond=$2
    shift 2
    if awk -v a="${1:-nan}" -v b="${2:-0}" -v c="${3:-0}" "BEGIN { exit !($cond) }"; then
        echo "ok   $what ($*)"
    else
        echo "FAIL $what ($*)"
        fail=1
    fi
}
for png in curves/forward_curves curves/forward_hist curves/schedule_beta curves/schedule_abar \
           curves/schedule_snr curves/covariance curves/similarity curves/noise_covariance \
           curves/colored_covariance curves/spectrum curves/samples few/forward_strip few/samples \
           few/trajectory langevin/langevin_plain langevin/langevin_annealed ncsn/samples ncsn/paths \
           samplers/ddpm samplers/ddim samplers/euler-maruyama samplers/ode-rk45 samplers/dpm++2m \
           samplers/ddpm_paths samplers/dpm++2m_paths; do
    if [ "$(head -c 8 "$out/$png.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
        echo "FAIL $out/$png.png is not a PNG"
        fail=1
    fi
done
lg=$out/langevin/log.txt cv=$out/curves/log.txt
plain=$(sed -n 's/^plain Langevin: weights [0-9.]* \/ \([0-9.]*\).*/\1/p' "$lg")
annealed=$(sed -n 's/^annealed Langevin, 50 levels.*weights \([0-9.]*\) \/ \([0-9.]*\).*/\1 \2/p' "$lg")
cov=$(sed -n 's/.*covariance off by \([0-9.]*\) of its norm (sampling alone: \([0-9.]*\)); top [0-9]* eigenvalues within \([0-9.]*\) relative (sampling: about \([0-9.]*\).*/\1 \2 \3 \4/p' "$cv")
swd() { # the second number (SWD) on the metrics line of the set named $1
    awk -v n="  $1" '/^against/ { t = 1 } t && index($0, n) == 1 { k = 0; for (i = 1; i <= NF; i++) if ($i ~ /^-?[0-9.]+(e-?[0-9]+)?$/) v[++k] = $i; print v[2]; exit }' "$cv"
}
ks=$(awk '$1 == 100 && NF == 7 { print $7; exit }' "$cv")
rms=$(awk 'NF == 7 && $1 ~ /^[0-9]+$/ { r = $5 / $4; d = r > 1 ? r - 1 : 1 - r; if (d > m) m = d } END { print m + 0 }' "$cv")
sw=$(grep -c '^sliced Wasserstein (W2' "$out/samplers/log.txt" || true)
if [ "$mode" = --smoke ]; then
    check "langevin printed its weights" 'a != "nan" && b != ""' "$plain" $annealed
    check "analyze printed the colored-noise check" 'a != "nan"' $cov
    check "five samplers evaluated" 'a == 5' "$sw"
else
    check "plain Langevin keeps the start's split: small-mode weight > 0.35" 'a > 0.35' "$plain"
    check "annealed Langevin recovers 0.8 / 0.2 within 0.05" 'a > 0.75 && a < 0.85 && b > 0.15 && b < 0.25' $annealed
    set -- $cov
    check "colored noise: covariance error <= 1.5 x sampling" 'a <= 1.5 * b' "$1" "$2"
    check "colored noise: top eigenvalues within 5 x sampling" 'a <= 5 * b' "$3" "$4"
    check "held-out data < colored noise < white noise (SWD)" 'a < b && b < c' \
        "$(swd held-out)" "$(swd colored)" "$(swd white)"
    check "forward chain at t = T: KS distance to N(0, 1) < 0.02" 'a < 0.02' "$ks"
    check "forward chain RMS within 2% of the closed form at every t" 'a < 0.02' "$rms"
    check "five samplers evaluated, finite SWD" 'a == 5' "$sw"
    if grep '^sliced Wasserstein' "$out/samplers/log.txt" | grep -qiE 'nan|inf'; then
        echo "FAIL a sampler's SWD is not finite"
        fail=1
    fi
fi
[ $fail = 0 ] && echo "gallery check passed ($mode)" || { echo "gallery check FAILED; output in $out.stdout"; exit 1; }
