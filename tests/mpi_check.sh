#!/usr/bin/env bash
# Several processes (mpirun) give the same bytes as one, and fail cleanly:
#   - training with P = 1, 2, 3, 4 ranks (oversubscribed) ends byte-identical to
#     the program run without mpirun: model, training state, final preview and
#     log.csv (its deterministic columns: step, loss, val_loss, lr, grad_norm;
#     img_per_s and seconds are timings);
#   - a run stopped at P = 2 and resumed at P = 3 ends as the uninterrupted run;
#   - a rank killed (SIGKILL) stops the run within 20 s, and resuming from the
#     last checkpoint with another P ends as the uninterrupted run;
#   - sampling (a stochastic sampler, and a U-Net's images) and FID (features
#     shared out) give the same bytes for P = 1 and P = 3;
#   - bad input: more ranks than shards, ranks with other arguments, a run
#     directory that is not the same for every rank (not shared), a data file
#     that differs between ranks: non-zero exit, rank 0's message.
# Skips (77) where the build has no MPI or mpirun is missing. With --smoke (the
# sanitizer build, unoptimised) P = 1, 2, 4, a shorter killed run, and no U-Net
# or FID (their gathering is the same code as the samples').
# usage: tests/mpi_check.sh [--smoke] BUILD OUT
set -uo pipefail
smoke=0
[ "${1:-}" = --smoke ] && { smoke=1; shift; }
build=$1 out=$2
bin=$build/diffusion
command -v mpirun > /dev/null || { echo "mpirun not installed: skipped"; exit 77; }
"$bin" --version | grep -q "^MPI: yes" || { echo "built without MPI: skipped"; exit 77; }
# root in CI; oversubscribed (4 ranks on 2 cores); under ASan, Open MPI's own
# allocations at exit are not ours to report
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
rm -rf "$out" && mkdir -p "$out" && cd "$out"
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
same() { # same DESCRIPTION DIR_A DIR_B [PREVIEW]: model, state, preview (if named), log columns 1-5
    local a=$2 b=$3 preview=${4:-}
    if cmp -s "$a/model.safetensors" "$b/model.safetensors" &&
       cmp -s "$a/latest.safetensors" "$b/latest.safetensors" &&
       { [ -z "$preview" ] || cmp -s "$a/$preview" "$b/$preview"; } &&
       cmp -s <(cut -d, -f1-5 "$a/log.csv") <(cut -d, -f1-5 "$b/log.csv"); then
        ok "$1"
    else
        bad "$1"
    fi
}

train="train --data toy:moons --n 2000 --steps 40 --batch 16 --accum 12 --val-every 20 --save-every 20
       --samples 16 --threads 1 --quiet --seed 3"
"$bin" $train --out one > one.log 2>&1 || { cat one.log; bad "training without mpirun"; }
ranks="1 2 3 4" long_steps=400
[ $smoke = 1 ] && ranks="1 2 4" long_steps=150
for P in $ranks; do
    mpirun -np $P "$bin" $train --out p$P > p$P.log 2>&1 || { cat p$P.log; bad "training with $P ranks"; }
    same "training with $P ranks: the same bytes as one process" one p$P samples/final.png
done
grep -h "processes:" p2.log p4.log

mpirun -np 2 "$bin" $train --out resumed --stop-after 20 > r1.log 2>&1 &&
    mpirun -np 3 "$bin" $train --out resumed --resume > r2.log 2>&1 || { cat r1.log r2.log; bad "stop at P = 2, resume at P = 3"; }
same "stopped at P = 2, resumed at P = 3: the uninterrupted run's bytes" one resumed samples/final.png

# A rank killed mid-run: the others stop, and the run resumes from its checkpoint.
long="train --data toy:moons --n 2000 --steps $long_steps --batch 16 --accum 6 --val-every 0 --save-every 25
      --samples 0 --threads 1 --quiet --seed 5"
"$bin" $long --out long > long.log 2>&1 || { cat long.log; bad "the uninterrupted long run"; }
mpirun -np 3 "$bin" $long --out "$PWD/killed" > killed.log 2>&1 &
launcher=$!
for _ in $(seq 400); do [ -f killed/latest.safetensors ] && break; sleep 0.02; done
victim=""
for pid in $(pgrep -f "diffusion train.*--out $PWD/killed"); do
    tr '\0' '\n' < /proc/$pid/environ 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$pid
done
start=$(date +%s)
if [ -n "$victim" ] && kill -9 "$victim"; then
    for _ in $(seq 400); do kill -0 $launcher 2> /dev/null || break; sleep 0.05; done
    if kill -0 $launcher 2> /dev/null; then
        bad "rank 1 killed: the run still going after 20 s"
        pkill -9 -f "diffusion train.*--out $PWD/killed"
    else
        wait $launcher && bad "rank 1 killed: mpirun exited 0" || ok "rank 1 killed: the run stopped after $(( $(date +%s) - start )) s, non-zero"
    fi
else
    bad "no rank 1 to kill (the run had ended or not started: $(cat killed.log))"
fi
wait 2> /dev/null
if [ -f killed/latest.safetensors ] && [ "$(tail -1 killed/log.csv | cut -d, -f1)" != $long_steps ]; then
    mpirun -np 2 "$bin" $long --out "$PWD/killed" --resume > resume.log 2>&1 || { cat resume.log; bad "resume after the kill"; }
    same "killed at P = 3, resumed at P = 2: the uninterrupted run's bytes" long killed
else
    bad "the killed run had no checkpoint, or had finished"
fi

# Sampling and FID.
sample="sample --checkpoint one/model.safetensors --sampler ddim --eta 1 --steps 20 --n 100 --batch 16 --threads 1"
"$bin" $sample --out s1.npy > s.log 2>&1 && mpirun -np 3 "$bin" $sample --out s3.npy >> s.log 2>&1 &&
    cmp -s s1.npy s3.npy && ok "DDIM (eta 1) samples: P = 3 gives one process's bytes" || { cat s.log; bad "DDIM samples with 3 ranks"; }
if [ $smoke = 0 ]; then
"$bin" train --data fashion-mnist --limit 64 --preset fmnist-tiny --steps 2 --batch 8 --out unet --quiet \
    --samples 0 --val-every 0 --threads 1 > u.log 2>&1 &&
    "$bin" train-classifier --out cls.safetensors --steps 10 --batch 32 --channels 8 --groups 4 \
    --features 16 --quiet --threads 1 >> u.log 2>&1 || { cat u.log; bad "a U-Net and a classifier"; }
images="sample --checkpoint unet/model.safetensors --steps 4 --n 24 --batch 8 --threads 1"
"$bin" $images --out i1.png > i.log 2>&1 && mpirun -np 3 "$bin" $images --out i3.png >> i.log 2>&1 &&
    cmp -s i1.png i3.png && ok "U-Net images: P = 3 gives one process's bytes" || { cat i.log; bad "images with 3 ranks"; }
fid="eval fid --checkpoint unet/model.safetensors --classifier cls.safetensors --data fashion-mnist:test
     --n 200 --steps 4 --threads 1 --json"
f1=$("$bin" $fid 2> fid1.err) && f3=$(mpirun -np 3 "$bin" $fid 2> fid3.err) &&
    [[ "$f1" == '{"metric":"fid","value":'* ]] && [ "$f1" = "$f3" ] &&
    ok "FID: P = 3 gives one process's number ($f1)" || bad "FID: '$f1' vs '$f3' ($(cat fid1.err fid3.err))"
fi

# Bad input.
msg=$(mpirun -np 13 "$bin" $train --out many 2>&1) && bad "13 ranks for 12 shards: exit 0" ||
    { [ "$(grep -c "13 processes, but a step has only 12 shards" <<< "$msg")" = 1 ] &&
      ok "13 ranks for 12 shards: refused, one message" || bad "13 ranks for 12 shards: $msg"; }
msg=$(mpirun -np 1 "$bin" $train --out a : -np 1 "$bin" $train --out b 2>&1) && bad "other arguments: exit 0" ||
    { grep -q "rank 1 was started with other arguments than rank 0" <<< "$msg" &&
      ok "ranks with other arguments: refused" || bad "ranks with other arguments: $msg"; }
mkdir -p here there
msg=$(mpirun -np 1 --wdir "$PWD/here" "$bin" $train --out run : -np 1 --wdir "$PWD/there" "$bin" $train --out run 2>&1) &&
    bad "a run directory not shared: exit 0" ||
    { grep -q "rank 1: run: does not see .*: the run directory must be on a file system that every rank shares" <<< "$msg" &&
      ok "a run directory each rank sees differently: refused" || bad "not shared: $msg"; }
for d in here there; do # a data file that differs between "machines"
    awk -v s=$([ $d = here ] && echo 1 || echo 2) 'BEGIN { srand(s); for (i = 0; i < 300; i++) print rand() "," rand() }' > $d/points.csv
done
msg=$(mpirun -np 1 --wdir "$PWD/here" "$bin" train --data csv:points.csv --steps 5 --batch 16 --accum 2 --out "$PWD/differ" --quiet : \
      -np 1 --wdir "$PWD/there" "$bin" train --data csv:points.csv --steps 5 --batch 16 --accum 2 --out "$PWD/differ" --quiet 2>&1) &&
    bad "other data on another rank: exit 0" ||
    { grep -q "rank 1 was started with other training data than rank 0" <<< "$msg" &&
      ok "other data on another rank: refused" || bad "other data: $msg"; }
exit $fail
