#!/usr/bin/env bash
# bench/mpi.sh - data-parallel training on this machine, measured, and projected
# onto N machines.
#
# Measured (Fashion-MNIST, global batch 128 = 2 shards of 64, 2 cores): one
# process with 2 threads, two processes (mpirun) with 1 thread each, and one
# process with 1 thread; seconds per step (median of steps 2..STEPS, from the
# img_per_s column of log.csv; 3 steps for the 10x model), and for two processes the part spent in exchanges (the ordered sum
# and the broadcast, waiting included; printed by `diffusion train`).
#
# Projected (printed with its formula): weak scaling, each machine (2 cores)
# keeping a batch of 128 per step, so the compute time per step stays the one
# measured here with 2 threads, and strong scaling, a global batch of 128 split
# over the N machines (compute time / N, taken as linear); the gradient (4 bytes per parameter) summed by a
# ring allreduce, t = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency,
# without overlap with the backward pass (diffusion.c does not overlap);
# efficiency = compute / (compute + exchange). diffusion.c's own exchange keeps
# the shard order (a chain passing the running sum in 1 MiB chunks, then a
# broadcast): about bytes / bandwidth + (N - 1) (latency + 1 MiB / bandwidth)
# for the chain plus the broadcast's 2 (N - 1) / N * bytes / bandwidth, i.e. the
# ring's cost plus a pipeline fill of (N - 1) chunks; it is printed beside it.
#
# usage: bench/mpi.sh [BUILD] [STEPS]
set -euo pipefail
build=${1:-build} steps=${2:-6}
bin=$(realpath "$build/diffusion")
command -v mpirun > /dev/null || { echo "bench/mpi.sh: mpirun not installed (apt-get install openmpi-bin)"; exit 1; }
"$bin" --version | grep -q "^MPI: yes" || { echo "bench/mpi.sh: $bin was built without MPI"; exit 1; }
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /processor: /'

# median seconds per step over steps 2..: 128 images / the img_per_s column of log.csv
per_step() {
    awk -F, 'NR > 2 { print 128 / $6 }' "$1/log.csv" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

measure() { # measure NAME STEPS MODEL-ARGS
    local name=$1 steps=$2
    shift 2
    local args="train --data fashion-mnist $* --batch 64 --accum 2 --steps $steps --log-every 1 --val-every 0
                --save-every 0 --samples 0 --quiet"
    "$bin" $args --threads 2 --out "$work/$name-t2" > /dev/null
    "$bin" $args --threads 1 --out "$work/$name-t1" > /dev/null
    mpirun -np 2 "$bin" $args --threads 1 --out "$work/$name-p2" > "$work/$name-p2.out"
    cmp -s "$work/$name-t2/latest.safetensors" "$work/$name-p2/latest.safetensors" || {
        echo "bench/mpi.sh: $name: two processes did not give one process's bytes"
        exit 1
    }
    local t2 t1 p2 x params
    t2=$(per_step "$work/$name-t2") t1=$(per_step "$work/$name-t1") p2=$(per_step "$work/$name-p2")
    # exchange share: the program's own total over all steps, per step
    x=$(sed -n 's/.*of which \([0-9.]*\) ms in exchanges.*/\1/p' "$work/$name-p2.out")
    params=$("$bin" info --checkpoint "$work/$name-t2/model.safetensors" | sed -n 's/^parameters: //p')
    printf "| %s | %s | %.3f | %.3f | %.3f | %.1f | %.0f%% | %.2fx |\n" "$name" "$params" "$t1" "$t2" "$p2" \
        "$x" "$(awk -v a="$t2" -v b="$p2" 'BEGIN { print 100 * a / b }')" \
        "$(awk -v a="$t1" -v b="$p2" 'BEGIN { print a / b }')"
    echo "$name $params $t2" >> "$work/measured"
}

echo
echo "| model | parameters | s/step, 1 process x 1 thread | s/step, 1 x 2 threads | s/step, 2 processes x 1 thread | exchanges ms/step (2 processes) | 2 processes vs 1 x 2 threads | speed-up vs 1 thread |"
echo "|---|---|---|---|---|---|---|---|"
measure fmnist-small "$steps" --preset fmnist-small
measure fmnist-small-x10 3 --preset fmnist-small --channels 200 --groups 8

project() { # project MEASURED-FILE: the tables below from "name parameters seconds-per-step" lines
    echo
    echo "Projection: ring allreduce of the fp32 gradient without overlap; in brackets diffusion.c's"
    echo "ordered chain + broadcast. Weak: batch 128 per 2-core machine (compute per step as measured"
    echo "with 2 threads). Strong: global batch 128 split over N machines (compute / N, taken as linear)."
    for net in "10 Gb/s Ethernet (1.25 GB/s, 20 us)|1.25e9|20e-6" "100 Gb/s InfiniBand (12.5 GB/s, 2 us)|12.5e9|2e-6"; do
        IFS='|' read -r label bw lat <<< "$net"
        echo
        echo "$label: efficiency = compute / (compute + exchange)"
        echo
        echo "| model | gradient MB | compute s/step (1 machine) | scaling | N = 2 | N = 8 | N = 32 | N = 128 |"
        echo "|---|---|---|---|---|---|---|---|"
        while read -r name params t; do
            for mode in weak strong; do
                awk -v name="$name" -v p="$params" -v t="$t" -v bw="$bw" -v lat="$lat" -v mode="$mode" 'BEGIN {
                    bytes = 4 * p; chunk = 1048576
                    printf "| %s | %.1f | %.3f | %s |", name, bytes / 1e6, t, mode
                    split("2 8 32 128", ns, " ")
                    for (i = 1; i <= 4; i++) {
                        n = ns[i]
                        c = mode == "weak" ? t : t / n
                        ring = 2 * (n - 1) / n * bytes / bw + 2 * (n - 1) * lat
                        chain = bytes / bw + (n - 1) * (lat + chunk / bw) + 2 * (n - 1) / n * bytes / bw + log(n) / log(2) * lat
                        printf " %.0f%% (%.0f%%) |", 100 * c / (c + ring), 100 * c / (c + chain)
                    }
                    printf "\n"
                }'
            done
        done < "$1"
    done
}
project "$work/measured"
