/* test_cli.c - the `diffusion` program on bad input: each case must exit
 * non-zero with a message that names the option or file and the problem, and
 * must not crash (a signal) or leave a half-written file behind. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/files.h"
#include "io/npy.h"
#include "test_util.h"

static const char *bin;
static char dir[] = "/tmp/dfn_cli_XXXXXX";

/* Runs `bin args` with stderr captured; returns the exit code (-1 for a signal). */
static int run(const char *args, char *err, size_t n) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 >/dev/null", bin, args);
    return test_run_command(cmd, err, n);
}

static void expect(const char *args, int code, const char *needle) {
    char err[8192];
    int rc = run(args, err, sizeof err);
    CHECK(rc == code && strstr(err, needle), "diffusion %s: exit %d (want %d), stderr: %s(want '%s')", args, rc,
          code, err, needle);
}

int main(void) {
    bin = test_program();
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        TEST_MAIN_END();
    }
    char args[1024], err[4096];
    CHECK(run("--version", err, sizeof err) == 0, "--version");
    expect("", 2, "usage");
    expect("frobnicate", 2, "unknown command 'frobnicate'");
    expect("train --steps abc --out x", 2, "--steps needs a whole number, got 'abc'");
    expect("train --bogus", 2, "unknown option '--bogus'");
    expect("train --data toy:moons", 2, "--out DIR is required");
    snprintf(args, sizeof args, "train --data toy:moons --out %s/a --preset huge", dir);
    expect(args, 1, "unknown model preset 'huge'");
    snprintf(args, sizeof args, "train --data nope:x --out %s/a", dir);
    expect(args, 1, "--data 'nope:x': unknown source");
    snprintf(args, sizeof args, "train --data idx:%s/missing.gz --out %s/a", dir, dir);
    expect(args, 1, "missing.gz");
    snprintf(args, sizeof args, "train --data toy:spirals --out %s/a", dir);
    expect(args, 1, "spirals");
    snprintf(args, sizeof args, "train --data toy:moons --n 100 --out %s/a --batch 500", dir);
    expect(args, 1, "fewer than the batch size 500");
    snprintf(args, sizeof args, "train --data toy:moons --out %s/a --schedule wavy", dir);
    expect(args, 1, "wavy");
    snprintf(args, sizeof args, "train --data toy:moons --out %s/a --ch-mult 1,x", dir);
    expect(args, 2, "--ch-mult expects comma-separated whole numbers");
    snprintf(args, sizeof args, "train --data toy:moons --out %s/a --model unet", dir);
    expect(args, 2, "a U-Net needs images");
    snprintf(args, sizeof args, "train --data fashion-mnist --out %s/a --channels 36", dir);
    expect(args, 1, "not divisible by groups");
    /* latent diffusion: f that does not divide the images, vectors, a missing or
     * wrong autoencoder, the autoencoder's options on a diffusion model (on a
     * few 28x28 images: loading all of Fashion-MNIST would take a second) */
    static float img28[4 * 28 * 28];
    snprintf(args, sizeof args, "%s/img28.npy", dir);
    CHECK(dfn_npy_write_f32(args, img28, 4, (int64_t[]){4, 1, 28, 28}) == DFN_OK, "npy");
    snprintf(args, sizeof args, "train-autoencoder --data npy:%s/img28.npy --batch 4 --out %s/a --ch-mult 1,2,2,2", dir, dir);
    expect(args, 1, "f = 8 (4 levels) does not divide the resolution 28");
    snprintf(args, sizeof args, "train-autoencoder --data toy:moons --out %s/a", dir);
    expect(args, 2, "an autoencoder needs images");
    snprintf(args, sizeof args, "train --data npy:%s/img28.npy --out %s/a --autoencoder %s/none.safetensors", dir, dir, dir);
    expect(args, 1, "none.safetensors");
    snprintf(args, sizeof args, "train --data npy:%s/img28.npy --batch 4 --out %s/a --kl-weight 0.1", dir, dir);
    expect(args, 2, "are diffusion train-autoencoder's");
    snprintf(args, sizeof args, "train-autoencoder --data npy:%s/img28.npy --batch 4 --out %s/a --preset fmnist-tiny", dir, dir);
    expect(args, 2, "--preset fmnist-tiny is not an autoencoder");
    expect("eval recon --data fashion-mnist:test", 2, "--autoencoder FILE is required");
    snprintf(args, sizeof args, "%s/mix.json", dir);
    FILE *mj = fopen(args, "w");
    if (mj) {
        fputs("{\"weights\": [1], \"means\": [1, 2]}", mj);
        fclose(mj);
    }
    snprintf(args, sizeof args, "train --data mixture:%s/mix.json --out %s/a", dir, dir);
    expect(args, 1, "mix.json: needs \"weights\"");
    /* found by fuzzing: two weights and one list of two means (read as two 1-D
     * means), and a variance beyond float (trained to NaN) */
    static const char *const bad_mixtures[][2] = {
        {"{\"weights\": [0.7, 0.3], \"means\": [[-2, 0]], \"stds\": [1, 1]}", "(K lists of D numbers)"},
        {"{\"weights\": [1], \"means\": [[0]], \"covs\": [[[3e39]]]}", "\"covs\" needs 1 matrices of 1 x 1 finite"},
        {"{\"weights\": [1, 1], \"means\": [[0], [1]], \"stds\": [1]}", "\"stds\" needs 2 finite numbers"},
    };
    for (size_t i = 0; i < sizeof bad_mixtures / sizeof bad_mixtures[0]; i++) {
        snprintf(args, sizeof args, "%s/mix.json", dir);
        if ((mj = fopen(args, "w"))) fputs(bad_mixtures[i][0], mj), fclose(mj);
        snprintf(args, sizeof args, "train --data mixture:%s/mix.json --out %s/a", dir, dir);
        expect(args, 1, bad_mixtures[i][1]);
    }
    /* a finished small run, then the same directory again */
    snprintf(args, sizeof args, "train --data toy:moons --n 256 --out %s/run --steps 3 --batch 32 --quiet --samples 0", dir);
    CHECK(run(args, err, sizeof err) == 0, "small run: %s", err);
    expect(args, 1, "already holds a training run");
    /* sampling from that run */
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.csv --n 10 --steps 5 --quiet", dir, dir);
    CHECK(run(args, err, sizeof err) == 0, "sample: %s", err);
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --sampler dpm++9", dir, dir);
    expect(args, 2, "dpm++9");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --sampler ddim --steps 5000", dir, dir);
    expect(args, 1, "5000");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --sampler annealed-langevin", dir, dir);
    expect(args, 1, "does not fit this checkpoint's process");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --spacing sideways", dir, dir);
    expect(args, 2, "sideways");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --class 3", dir, dir);
    expect(args, 1, "trained unconditionally");
    snprintf(args, sizeof args, "sample --checkpoint %s/nothing.safetensors --out %s/s.png", dir, dir);
    expect(args, 1, "nothing.safetensors");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.txt", dir, dir);
    expect(args, 2, "use .png, .svg, .npy or .csv");
    /* few-step models: a consistency model and a diffusion model each refuse
     * the other's sampler; distill's and ct's options in the wrong places */
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --sampler consistency", dir, dir);
    expect(args, 1, "sampler 'consistency' needs a consistency model");
    snprintf(args, sizeof args, "train --data toy:moons --n 256 --out %s/ct --steps 3 --batch 32 --quiet --samples 0 --objective ct", dir);
    CHECK(run(args, err, sizeof err) == 0, "consistency training run: %s", err);
    snprintf(args, sizeof args, "sample --checkpoint %s/ct/model.safetensors --out %s/s.csv --n 4 --quiet", dir, dir);
    CHECK(run(args, err, sizeof err) == 0, "a consistency model samples with its default: %s", err);
    snprintf(args, sizeof args, "sample --checkpoint %s/ct/model.safetensors --out %s/s.png --sampler ddim", dir, dir);
    expect(args, 1, "is a consistency model");
    snprintf(args, sizeof args, "sample --checkpoint %s/ct/model.safetensors --out %s/s.png --steps 100", dir, dir);
    expect(args, 1, "1 to 64");
    snprintf(args, sizeof args, "eval bound --data toy:moons --checkpoint %s/ct/model.safetensors", dir);
    expect(args, 1, "is a consistency model");
    snprintf(args, sizeof args, "eval straightness --checkpoint %s/run/model.safetensors", dir);
    expect(args, 1, "a rectified flow is needed");
    snprintf(args, sizeof args, "train --data toy:moons --out %s/a --objective cm", dir);
    expect(args, 2, "--objective 'cm': diffusion or ct");
    snprintf(args, sizeof args, "train --data toy:moons --out %s/a --levels 5", dir);
    expect(args, 2, "--levels is diffusion distill --method cd's");
    snprintf(args, sizeof args, "train --data toy:moons --out %s/a --teacher %s/run/model.safetensors", dir, dir);
    expect(args, 2, "--teacher is diffusion distill's");
    snprintf(args, sizeof args, "distill --data toy:moons --out %s/a --method cd", dir);
    expect(args, 2, "--teacher CKPT is required");
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/a --method progressive", dir, dir);
    expect(args, 2, "--method progressive: cd or reflow");
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/a --method cd --width 64", dir, dir);
    expect(args, 2, "the student takes the teacher's architecture");
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/a --method cd --one-step", dir, dir);
    expect(args, 2, "are --method reflow's");
    snprintf(args, sizeof args, "distill --teacher %s/nothing.safetensors --out %s/a --method cd", dir, dir);
    expect(args, 1, "nothing.safetensors");
    snprintf(args, sizeof args, "distill --teacher %s/ct/model.safetensors --out %s/a --method cd --data toy:moons", dir, dir);
    expect(args, 1, "a consistency model already");
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/a --method cd --data npy:%s/img28.npy --batch 4", dir, dir, dir);
    expect(args, 1, "training data");
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/rf --method reflow --pair-sampler ddpm --pairs 8", dir, dir);
    expect(args, 1, "pairs need a deterministic map");
    /* a distillation stopped and resumed with only --teacher: the run's own settings */
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/cd --method cd --teacher-step heun "
             "--prediction v --data toy:moons --n 256 --steps 4 --batch 32 --stop-after 2 --quiet --samples 0", dir, dir);
    CHECK(run(args, err, sizeof err) == 0, "distill, first half: %s", err);
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/cd --resume --quiet", dir, dir);
    CHECK(run(args, err, sizeof err) == 0, "distill resumed with only --teacher: %s", err);
    snprintf(args, sizeof args, "distill --teacher %s/ct/model.safetensors --out %s/cd --resume --quiet", dir, dir);
    expect(args, 1, "teacher");
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/cd --method reflow --pairs 8 --batch 4", dir, dir);
    expect(args, 1, "already holds a training run");
    snprintf(args, sizeof args, "distill --teacher %s/run/model.safetensors --out %s/nopairs --method reflow --resume", dir, dir);
    expect(args, 1, "config.json");
    /* straightness: of a flow's own paths, over at least 2 steps */
    snprintf(args, sizeof args, "train --data toy:moons --n 256 --out %s/flow3 --steps 3 --batch 32 --quiet --samples 0 --sde flow", dir);
    CHECK(run(args, err, sizeof err) == 0, "flow run: %s", err);
    snprintf(args, sizeof args, "eval straightness --checkpoint %s/flow3/model.safetensors --n 16 --steps 4", dir);
    CHECK(run(args, err, sizeof err) == 0, "straightness: %s", err);
    snprintf(args, sizeof args, "eval straightness --checkpoint %s/flow3/model.safetensors --steps 1", dir);
    expect(args, 1, "need >= 2 steps");
    snprintf(args, sizeof args, "eval straightness --samples %s/three.npy", dir);
    expect(args, 2, "give --checkpoint, not --samples");
    /* eval on bad input */
    expect("eval", 2, "name a metric");
    expect("eval likelihood --data toy:moons", 2, "unknown metric 'likelihood'");
    expect("eval bound --data toy:moons", 2, "--checkpoint FILE is required");
    snprintf(args, sizeof args, "eval fid --data fashion-mnist:test --checkpoint %s/run/model.safetensors", dir);
    expect(args, 2, "--classifier FILE is required");
    float three[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, nan_rows[8] = {0, 1, 2, 3, 0.0f / 0.0f, 5, 6, 7};
    snprintf(args, sizeof args, "%s/three.npy", dir);
    CHECK(dfn_npy_write_f32(args, three, 2, (int64_t[]){4, 3}) == DFN_OK, "npy");
    snprintf(args, sizeof args, "eval vectors --data toy:moons --samples %s/three.npy", dir);
    expect(args, 1, "dimension");
    /* a CSV of one wide row: refused before a model is built, and a model for
     * 200,000 inputs is refused as such */
    {
        snprintf(args, sizeof args, "%s/wide.csv", dir);
        FILE *wide = fopen(args, "w");
        for (int j = 0; j < 200000; j++) fprintf(wide, j ? ",%d" : "%d", j % 7);
        fprintf(wide, "\n");
        fclose(wide);
        snprintf(args, sizeof args, "train --data csv:%s/wide.csv --batch 4 --out %s/wide", dir, dir);
        expect(args, 1, "1 samples, fewer than the batch size 4");
        snprintf(args, sizeof args, "train --data csv:%s/wide.csv --batch 1 --out %s/wide", dir, dir);
        expect(args, 1, "vectors of 200000 values are beyond what the MLP is meant for");
    }
    /* arrays that are neither vectors nor images say what they are */
    float flat[100] = {0};
    snprintf(args, sizeof args, "%s/flat.npy", dir);
    CHECK(dfn_npy_write_f32(args, flat, 1, (int64_t[]){100}) == DFN_OK, "npy");
    snprintf(args, sizeof args, "train --data npy:%s/flat.npy --out %s/flat", dir, dir);
    expect(args, 1, "flat.npy: an array of shape (100,) (1 dimension)");
    snprintf(args, sizeof args, "%s/five.npy", dir);
    CHECK(dfn_npy_write_f32(args, flat, 5, (int64_t[]){2, 2, 5, 5, 1}) == DFN_OK, "npy");
    snprintf(args, sizeof args, "eval mmd --data toy:moons --samples %s/five.npy", dir);
    expect(args, 1, "five.npy: an array of shape (2, 2, 5, 5, 1) (5 dimensions)");
    snprintf(args, sizeof args, "%s/nan.npy", dir);
    CHECK(dfn_npy_write_f32(args, nan_rows, 2, (int64_t[]){4, 2}) == DFN_OK, "npy");
    snprintf(args, sizeof args, "eval mmd --data toy:moons --samples %s/nan.npy", dir);
    expect(args, 1, "nan.npy: dataset: sample 2, element 0 is NaN");
    snprintf(args, sizeof args, "eval nll --data toy:moons --checkpoint %s/run/model.safetensors --divergence psychic", dir);
    expect(args, 1, "psychic");
    /* --resume takes the settings from the run directory: a run with
     * non-default options, stopped and resumed with --out and --resume alone,
     * ends byte-identical to one that was not stopped; an option given again
     * that differs is refused, naming it */
    {
        const char *opts = "--data toy:moons --n 2000 --batch 32 --lr 2e-3 --sde vp --width 32 --depth 2 "
                           "--ema 0.99 --steps 24 --save-every 4 --val-every 8 --samples 0 --quiet --seed 5";
        snprintf(args, sizeof args, "train %s --out %s/whole", opts, dir);
        CHECK(run(args, err, sizeof err) == 0, "uninterrupted run: %s", err);
        snprintf(args, sizeof args, "train %s --out %s/parts --stop-after 10", opts, dir);
        CHECK(run(args, err, sizeof err) == 0, "first part: %s", err);
        snprintf(args, sizeof args, "train --out %s/parts --resume --quiet", dir);
        CHECK(run(args, err, sizeof err) == 0, "resume with --out and --resume alone: %s", err);
        char a[300], b[300];
        snprintf(a, sizeof a, "%.250s/whole/model.safetensors", dir);
        snprintf(b, sizeof b, "%.250s/parts/model.safetensors", dir);
        snprintf(args, sizeof args, "cmp -s %s %s", a, b);
        CHECK(system(args) == 0, "resumed run ends byte-identical to the uninterrupted one");
        snprintf(args, sizeof args, "train --out %s/parts --resume --steps 30 --lr 1e-3", dir);
        expect(args, 1, "train.lr is 0.002 in the run, 0.001 now");
        snprintf(args, sizeof args, "train --out %s/parts --resume --steps 30 --n 3000", dir);
        expect(args, 1, "data.n is 2000 in the run, 3000 now");
        snprintf(args, sizeof args, "train --out %s/parts --resume --steps 30 --depth 3", dir);
        expect(args, 1, "model.depth is 2 in the run, 3 now");
    }
    /* a flow process learns the velocity by default, and flow-euler samples it */
    snprintf(args, sizeof args, "train --data toy:moons --sde flow --steps 20 --batch 64 --samples 0 --quiet --out %s/flow", dir);
    CHECK(run(args, err, sizeof err) == 0, "flow run: %s", err);
    {
        char cfgpath[600];
        snprintf(cfgpath, sizeof cfgpath, "%s/flow/config.json", dir);
        char *text = dfn_read_text_file(cfgpath);
        CHECK(text && strstr(text, "\"prediction\":\t\"flow\""), "the flow run predicts flow: %s", text ? text : "-");
        free(text);
        snprintf(args, sizeof args, "sample --checkpoint %s/flow/model.safetensors --sampler flow-euler --steps 20 --n 50 "
                 "--out %s/flow.csv --quiet", dir, dir);
        CHECK(run(args, err, sizeof err) == 0, "flow-euler: %s", err);
    }
    /* --trajectory: frames after evenly spaced steps, the last the samples as
     * returned (after the final denoising step) */
    {
        snprintf(args, sizeof args, "sample --checkpoint %s/flow/model.safetensors --steps 10 --n 6 --out %s/t.npy "
                 "--trajectory %s/traj.npy --trajectory-samples 3 --trajectory-frames 4 --quiet", dir, dir, dir);
        CHECK(run(args, err, sizeof err) == 0, "trajectory: %s", err);
        dfn_npy_array out, traj;
        snprintf(args, sizeof args, "%s/t.npy", dir);
        CHECK(dfn_npy_read(args, &out) == DFN_OK, "samples");
        snprintf(args, sizeof args, "%s/traj.npy", dir);
        CHECK(dfn_npy_read(args, &traj) == DFN_OK, "trajectory frames");
        CHECK(traj.ndim == 3 && traj.shape[0] == 4 && traj.shape[1] == 3 && traj.shape[2] == 2, "frames (4, 3, 2)");
        if (traj.data && out.data && traj.numel == 24)
            CHECK(!memcmp(traj.data + 3 * 3 * 2, out.data, 3 * 2 * sizeof(float)), "the last frame is the output");
        dfn_npy_free(&out);
        dfn_npy_free(&traj);
    }
    /* the progress bar on a terminal (`script` gives the program one) counts
     * the steps 1/S .. S/S (it ran 2/S .. S+1/S) */
    if (system("command -v script > /dev/null 2>&1") == 0) {
        char cmd[2048], out[16384];
        snprintf(cmd, sizeof cmd, "script -qec '%s sample --checkpoint %s/flow/model.safetensors --sampler flow-euler "
                 "--steps 5 --n 4 --out %s/p.csv' /dev/null 2>&1", bin, dir, dir);
        int rc = test_run_command(cmd, out, sizeof out);
        CHECK(rc == 0 && strstr(out, " 1/5 steps") && strstr(out, " 5/5 steps") && !strstr(out, "6/5"),
              "progress 1/5 .. 5/5: rc %d: %s", rc, out);
    } else {
        printf("  (no `script` program: the progress bar's count is not checked)\n");
    }
    /* --list names the processes each sampler fits (the refusals point there) */
    {
        char cmd[1024], out[16384];
        snprintf(cmd, sizeof cmd, "%s sample --list 2>&1", bin);
        CHECK(test_run_command(cmd, out, sizeof out) == 0, "sample --list: %s", out);
        const char *em = strstr(out, "\n  euler-maruyama "), *fe = strstr(out, "\n  flow-euler "),
                   *dd = strstr(out, "\n  ddim ");
        CHECK(em && strstr(em, " discrete,vp,subvp,ve ") < strchr(em + 1, '\n') && strstr(em, " discrete,vp,subvp,ve "),
              "euler-maruyama fits discrete, vp, subvp and ve: %s", out);
        CHECK(fe && strstr(fe, " flow ") && strstr(fe, " flow ") < strchr(fe + 1, '\n'), "flow-euler fits flow: %s", out);
        CHECK(dd && strstr(dd, " discrete ") && strstr(dd, " discrete ") < strchr(dd + 1, '\n'),
              "ddim fits the discrete process: %s", out);
    }
    /* a sampler that blows up stops with a message naming it, the step and the
     * sample, and leaves an existing output file as it was */
    snprintf(args, sizeof args, "train --data toy:moons --sde subvp --steps 20 --batch 64 --samples 0 --quiet --out %s/subvp", dir);
    CHECK(run(args, err, sizeof err) == 0, "sub-VP run: %s", err);
    {
        char out_path[600];
        snprintf(out_path, sizeof out_path, "%s/kept.csv", dir);
        CHECK(dfn_write_text_file(out_path, "1,2\n") == DFN_OK, "existing output");
        snprintf(args, sizeof args, "sample --checkpoint %s/subvp/model.safetensors --sampler langevin --n 20 --out %s --quiet",
                 dir, out_path);
        expect(args, 1, "sampler 'langevin': step");
        char *kept = dfn_read_text_file(out_path);
        CHECK(kept && !strcmp(kept, "1,2\n"), "the existing output is untouched: %s", kept ? kept : "(gone)");
        free(kept);
    }
    /* control: edit, inpaint, invert, interpolate, classifier guidance */
    snprintf(args, sizeof args, "train --data fashion-mnist --preset fmnist-tiny --channels 8 --groups 4 --steps 2 "
             "--batch 8 --samples 0 --val-batches 1 --quiet --out %s/img", dir);
    CHECK(run(args, err, sizeof err) == 0, "small image run: %s", err);
    { /* images get the recipe study's winner where the command line is silent */
        char cfgpath[600];
        snprintf(cfgpath, sizeof cfgpath, "%s/img/config.json", dir);
        char *text = dfn_read_text_file(cfgpath);
        CHECK(text && strstr(text, "\"prediction\":\t\"v\"") && strstr(text, "\"weighting\":\t\"min-snr\"") &&
                  strstr(text, "\"lr\":\t0.001,") && strstr(text, "\"warmup\":\t0,") &&
                  strstr(text, "\"batch_size\":\t8,"),
              "an image run defaults to v, min-SNR, lr 1e-3, warm-up min(100, steps/10), its own batch: %s",
              text ? text : "-");
        free(text);
    }
    { /* --precision: a name the library knows; a bfloat16 run records it and keeps it on resume */
        snprintf(args, sizeof args, "train --data fashion-mnist --precision fp16 --steps 2 --out %s/p16", dir);
        expect(args, 2, "unknown precision 'fp16' (known: fp32, bf16)");
        snprintf(args, sizeof args, "sample --checkpoint %s/img/model.safetensors --precision half --n 2 --out %s/p.npy",
                 dir, dir);
        expect(args, 2, "unknown precision 'half'");
        snprintf(args, sizeof args, "train --data fashion-mnist --preset fmnist-tiny --channels 8 --groups 4 --steps 2 "
                 "--batch 8 --samples 0 --val-every 0 --quiet --precision bf16 --out %s/p16", dir);
        if (dfn_precision_available(DFN_PRECISION_BF16) == DFN_OK) { /* (DFN_ISA=avx2 runs no bfloat16) */
            CHECK(run(args, err, sizeof err) == 0, "a bfloat16 run: %s", err);
            char cfgpath[600];
            snprintf(cfgpath, sizeof cfgpath, "%s/p16/config.json", dir);
            char *text = dfn_read_text_file(cfgpath);
            CHECK(text && strstr(text, "\"bf16\":\t1,"), "config.json records bf16: %s", text ? text : "-");
            free(text);
            snprintf(args, sizeof args, "train --out %s/p16 --resume --steps 3 --precision fp32 --quiet", dir);
            expect(args, 1, "train.bf16 is 1 in the run, absent now");
            snprintf(args, sizeof args, "sample --checkpoint %s/p16/model.safetensors --precision bf16 --n 2 --batch 2 "
                     "--steps 3 --out %s/p.npy --quiet", dir, dir);
            CHECK(run(args, err, sizeof err) == 0, "bfloat16 sampling: %s", err);
        } else {
            expect(args, 2, "--precision bf16: ");
        }
    }
    {
        char img[128], path[128];
        snprintf(img, sizeof img, "%s/img/model.safetensors", dir);
        snprintf(args, sizeof args, "edit --checkpoint %s --input fashion-mnist:test --n 2 --strength 0.3 --steps 4 "
                 "--out %s/e.png --quiet", img, dir);
        CHECK(run(args, err, sizeof err) == 0, "edit: %s", err);
        snprintf(args, sizeof args, "edit --checkpoint %s --input fashion-mnist:test --strength 0 --out %s/e.png", img, dir);
        expect(args, 2, "--strength 0: need numbers 0 < S <= 1");
        snprintf(args, sizeof args, "edit --checkpoint %s --input fashion-mnist:test --strength 1.5 --out %s/e.png", img, dir);
        expect(args, 2, "--strength 1.5");
        snprintf(args, sizeof args, "edit --checkpoint %s --input fashion-mnist:test --strength 0.2,0.5 --out %s/e.npy", img, dir);
        expect(args, 2, "several strengths make a strip");
        snprintf(args, sizeof args, "edit --checkpoint %s --out %s/e.png", img, dir);
        expect(args, 2, "--input SPEC is required");
        snprintf(args, sizeof args, "edit --checkpoint %s --input %s/missing.png --out %s/e.png", img, dir, dir);
        expect(args, 1, "missing.png");
        /* a mask of another size is refused, naming the file */
        float small[100] = {0}, mask[784];
        snprintf(path, sizeof path, "%s/small.png", dir);
        CHECK(dfn_png_write(path, small, 1, 10, 10) == DFN_OK, "png");
        snprintf(args, sizeof args, "inpaint --checkpoint %s --input fashion-mnist:test --mask %s --out %s/i.png",
                 img, path, dir);
        expect(args, 1, "small.png: 10x10 pixels, the model takes 28x28");
        for (int i = 0; i < 784; i++) mask[i] = (i % 28) < 14 ? 1.0f : -1.0f; /* left half generated */
        snprintf(path, sizeof path, "%s/mask.png", dir);
        CHECK(dfn_png_write(path, mask, 1, 28, 28) == DFN_OK, "png");
        snprintf(args, sizeof args, "inpaint --checkpoint %s --input fashion-mnist:test --n 2 --mask %s --sampler repaint "
                 "--steps 10 --jump-length 20 --out %s/i.png", img, path, dir);
        expect(args, 1, "jump_length = 20");
        snprintf(args, sizeof args, "inpaint --checkpoint %s --input fashion-mnist:test --n 2 --mask %s --sampler repaint "
                 "--steps 10 --jump-length 2 --jump-n-sample 2 --out %s/i.npy --quiet", img, path, dir);
        CHECK(run(args, err, sizeof err) == 0, "inpaint with repaint: %s", err);
        snprintf(args, sizeof args, "inpaint --checkpoint %s --input fashion-mnist:test --out %s/i.png", img, dir);
        expect(args, 2, "--mask FILE is required");
        snprintf(args, sizeof args, "invert --checkpoint %s --input fashion-mnist:test --n 2 --steps 5 --out %s/inv.png",
                 img, dir);
        expect(args, 2, "use .npy");
        snprintf(args, sizeof args, "invert --checkpoint %s --input fashion-mnist:test --n 2 --steps 5 --out %s/inv.npy",
                 img, dir);
        CHECK(run(args, err, sizeof err) == 0, "invert: %s", err);
        snprintf(args, sizeof args, "interpolate --checkpoint %s --input fashion-mnist:test --out %s/l.png", img, dir);
        expect(args, 2, "give both --input and --input-b");
        snprintf(args, sizeof args, "interpolate --checkpoint %s --frames 1 --out %s/l.png", img, dir);
        expect(args, 2, "--frames 1");
        snprintf(args, sizeof args, "interpolate --checkpoint %s --frames 4 --steps 3 --out %s/l.png --quiet", img, dir);
        CHECK(run(args, err, sizeof err) == 0, "interpolate: %s", err);
        snprintf(args, sizeof args, "invert --checkpoint %s/subvp/model.safetensors --input toy:moons --out %s/inv.npy",
                 dir, dir);
        expect(args, 1, "DDIM inversion needs a discrete schedule");
        /* classifier guidance: the classifier must be a noisy one, of the same process and images */
        snprintf(args, sizeof args, "train-classifier --steps 2 --batch 8 --channels 8 --groups 4 --quiet --out %s/clean.safetensors", dir);
        CHECK(run(args, err, sizeof err) == 0, "clean classifier: %s", err);
        /* sample quality: real images degraded, the floor beside them; FID during training */
        {
            char cmd[2048], out[8192];
            /* (the test images only: loading the 60,000 training images takes long under the sanitizers) */
            snprintf(cmd, sizeof cmd, "%s eval fid --real fashion-mnist:test --data fashion-mnist:test --floor "
                     "fashion-mnist:test --classifier %s/clean.safetensors --n 200 --degrade blur:1 --threads 1 2>&1",
                     bin, dir);
            CHECK(test_run_command(cmd, out, sizeof out) == 0 && strstr(out, "FID: ") &&
                      strstr(out, "200 images of fashion-mnist:test, degraded by blur:1 vs 10000 of fashion-mnist:test") &&
                      strstr(out, "floor: ") && strstr(out, "(200 held-out images of fashion-mnist:test vs the same"),
                  "eval fid --real --degrade: %s", out);
        }
        snprintf(args, sizeof args, "eval fid --real fashion-mnist:test --checkpoint %s --data fashion-mnist:test "
                 "--classifier %s/clean.safetensors", img, dir);
        expect(args, 2, "--real takes the place of --checkpoint and --samples");
        snprintf(args, sizeof args, "eval swd --real fashion-mnist:test --data fashion-mnist:test");
        expect(args, 2, "--real, --degrade and --floor go with fid and kid");
        snprintf(args, sizeof args, "eval fid --real fashion-mnist:test --data fashion-mnist:test --classifier "
                 "%s/clean.safetensors --n 200 --degrade swirl:2", dir);
        expect(args, 1, "degradation 'swirl:2'");
        snprintf(args, sizeof args, "eval kid --real fashion-mnist:test --data fashion-mnist:test --classifier "
                 "%s/clean.safetensors --n 200 --floor npy:%s/none.npy", dir, dir);
        expect(args, 1, "none.npy");
        const char *tiny = "--data fashion-mnist:test --limit 256 --val fashion-mnist:test --channels 8 --ch-mult 1,2 "
                           "--groups 4 --batch 8 --samples 0 --val-every 0 --quiet --threads 1";
        snprintf(args, sizeof args, "train %s --steps 4 --out %s/fidrun --fid-every 2 --fid-classifier %s/clean.safetensors "
                 "--fid-n 150 --fid-steps 2", tiny, dir, dir);
        CHECK(run(args, err, sizeof err) == 0, "train --fid-every: %s", err);
        snprintf(args, sizeof args, "%s/fidrun/log.csv", dir);
        char *flog = dfn_read_text_file(args);
        CHECK(flog && strstr(flog, "seconds,fid\n") && strstr(flog, "\n2,") && strstr(flog, "\n4,"),
              "log.csv with an fid column: %s", flog ? flog : "(none)");
        if (flog) { /* rows 2 and 4 end with a positive FID */
            for (const char *row = strstr(flog, "\n2,"); row && row[1]; row = strchr(row + 1, '\n')) {
                const char *end = strchr(row + 1, '\n'), *c = end;
                while (c && c > row && c[-1] != ',') c--;
                CHECK(c && strtod(c, NULL) > 0, "an FID in the row '%.*s'", end ? (int)(end - row - 1) : 0, row + 1);
            }
        }
        free(flog);
        snprintf(args, sizeof args, "train %s --steps 4 --out %s/nofid --fid-every 2", tiny, dir);
        expect(args, 1, "--fid-every needs --fid-classifier FILE");
        snprintf(args, sizeof args, "train %s --steps 2 --out %s/nofid", tiny, dir);
        CHECK(run(args, err, sizeof err) == 0, "a run without FID: %s", err);
        snprintf(args, sizeof args, "train --out %s/nofid --resume --steps 4 --fid-every 2 --fid-classifier %s/clean.safetensors "
                 "--fid-n 150 --quiet", dir, dir);
        expect(args, 1, "has no fid column: the run was started without an FID every K steps");
        snprintf(args, sizeof args, "train %s --steps 2 --out %s/fidsmall --fid-every 2 --fid-classifier %s/clean.safetensors "
                 "--fid-n 20", tiny, dir, dir);
        expect(args, 1, "an FID of 20 samples: it needs more than the classifier's 32 features");
        snprintf(args, sizeof args, "sample --checkpoint %s --classifier %s/clean.safetensors --class 1 --out %s/g.png", img, dir, dir);
        expect(args, 1, "clean.safetensors: a clean-image classifier, not a classifier of noisy images");
        snprintf(args, sizeof args, "sample --checkpoint %s --classifier %s/clean.safetensors --out %s/g.png", img, dir, dir);
        expect(args, 2, "--classifier guides towards a --class K");
        snprintf(args, sizeof args, "train-classifier --process-from %s --out %s/n.safetensors", img, dir);
        expect(args, 2, "--process-from goes with --noisy");
        snprintf(args, sizeof args, "train-classifier --noisy --steps 2 --batch 8 --channels 8 --groups 4 --quiet "
                 "--out %s/noisy.safetensors", dir);
        CHECK(run(args, err, sizeof err) == 0, "noisy classifier: %s", err);
        snprintf(args, sizeof args, "sample --checkpoint %s --classifier %s/noisy.safetensors --class 12 --out %s/g.png", img, dir, dir);
        expect(args, 1, "class 12: the classifier has 10 classes");
        snprintf(args, sizeof args, "sample --checkpoint %s --classifier %s/noisy.safetensors --class 2 --classifier-scale 3 "
                 "--n 2 --steps 3 --out %s/g.png --quiet", img, dir, dir);
        CHECK(run(args, err, sizeof err) == 0, "classifier guidance: %s", err);
        snprintf(args, sizeof args, "eval fid --data fashion-mnist:test --checkpoint %s --classifier %s/noisy.safetensors --n 10",
                 img, dir);
        expect(args, 1, "a classifier of noisy images");
        snprintf(args, sizeof args, "train-classifier --noisy --process-from %s/subvp/model.safetensors --steps 2 --batch 8 "
                 "--channels 8 --groups 4 --quiet --out %s/noisy_vp.safetensors", dir, dir);
        CHECK(run(args, err, sizeof err) == 0, "noisy classifier on sub-VP: %s", err);
        snprintf(args, sizeof args, "sample --checkpoint %s --classifier %s/noisy_vp.safetensors --class 2 --out %s/g.png", img, dir, dir);
        expect(args, 1, "trained on another noise process (subvp)");
        snprintf(args, sizeof args, "sample --checkpoint %s/subvp/model.safetensors --classifier %s/noisy_vp.safetensors "
                 "--class 2 --out %s/g.csv", dir, dir, dir);
        expect(args, 1, "the diffusion model's samples");
    }
    /* partial conditioning of vectors: x_1 given, x_2 sampled; the given value is kept exactly */
    {
        float known[10] = {0.5f, 0, 0.5f, 0, 0.5f, 0, 0.5f, 0, 0.5f, 0}, m2[2] = {0.0f, 1.0f}, bad[2] = {0.0f, 2.0f};
        snprintf(args, sizeof args, "%s/known.npy", dir);
        CHECK(dfn_npy_write_f32(args, known, 2, (int64_t[]){5, 2}) == DFN_OK, "npy");
        snprintf(args, sizeof args, "%s/m2.npy", dir);
        CHECK(dfn_npy_write_f32(args, m2, 2, (int64_t[]){1, 2}) == DFN_OK, "npy");
        snprintf(args, sizeof args, "%s/bad.npy", dir);
        CHECK(dfn_npy_write_f32(args, bad, 2, (int64_t[]){1, 2}) == DFN_OK, "npy");
        snprintf(args, sizeof args, "inpaint --checkpoint %s/run/model.safetensors --input %s/known.npy --mask %s/bad.npy "
                 "--out %s/p.csv", dir, dir, dir, dir);
        expect(args, 1, "bad.npy: value 2 at 1, need 0..1");
        snprintf(args, sizeof args, "inpaint --checkpoint %s/run/model.safetensors --input %s/known.npy --mask %s/m2.npy "
                 "--steps 10 --out %s/p.csv --quiet", dir, dir, dir, dir);
        CHECK(run(args, err, sizeof err) == 0, "partial conditioning: %s", err);
        snprintf(args, sizeof args, "%s/p.csv", dir);
        char *csv = dfn_read_text_file(args);
        int rows = 0, kept = 1;
        for (char *line = csv; line && *line; rows++) {
            kept &= strtof(line, NULL) == 0.5f;
            char *nl = strchr(line, '\n');
            line = nl ? nl + 1 : NULL;
        }
        CHECK(rows == 5 && kept, "partial conditioning: %d rows, x_1 = 0.5 kept: %d", rows, kept);
        free(csv);
        snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --box 1,-1 --out %s/b.csv", dir, dir);
        expect(args, 2, "--box 1,-1: need two finite numbers LO,HI with LO < HI");
        snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --box -0.25,0.25 --n 20 --steps 10 "
                 "--out %s/b.csv --quiet", dir, dir);
        CHECK(run(args, err, sizeof err) == 0, "box: %s", err);
        snprintf(args, sizeof args, "%s/b.csv", dir);
        csv = dfn_read_text_file(args);
        int inside = csv != NULL;
        for (char *c = csv; c && *c;) {
            char *end;
            const double v = strtod(c, &end);
            if (end == c) break;
            inside &= v >= -0.25 && v <= 0.25;
            c = *end ? end + 1 : end;
        }
        CHECK(inside, "--box: every coordinate within [-0.25, 0.25]");
        free(csv);
    }
    /* analyze and forward (seed 000's covariance view and forward process) */
    snprintf(args, sizeof args, "train --data toy:moons --n 500 --limit 100 --batch 200 --out %s/lim", dir);
    expect(args, 1, "training data: 100 samples, fewer than the batch size 200"); /* --limit keeps the first 100 */
    snprintf(args, sizeof args, "analyze --out %s/an", dir);
    expect(args, 2, "give the data (diffusion analyze DATA) and --out DIR");
    snprintf(args, sizeof args, "forward toy:curves --out %s/fw --times 0,50,20", dir);
    expect(args, 2, "--times 0,50,20: steps must rise within 0..T = 100");
    snprintf(args, sizeof args, "forward toy:curves --out %s/fw --schedule wobbly", dir);
    expect(args, 2, "wobbly");
    snprintf(args, sizeof args, "analyze fashion-mnist --limit 10 --out %s/an --max-dim 500", dir);
    expect(args, 1, "fashion-mnist: samples of 784 values; the covariance view needs 3 matrices of 784 x 784 doubles");
    snprintf(args, sizeof args, "%s/nan.csv", dir);
    CHECK(dfn_write_text_file(args, "1,2\n3,nan\n") == DFN_OK, "csv");
    snprintf(args, sizeof args, "analyze csv:%s/nan.csv --out %s/an", dir, dir);
    expect(args, 1, "nan.csv");
    snprintf(args, sizeof args, "%s/same.csv", dir);
    CHECK(dfn_write_text_file(args, "1,2\n1,2\n1,2\n") == DFN_OK, "csv");
    snprintf(args, sizeof args, "analyze csv:%s/same.csv --out %s/an", dir, dir);
    expect(args, 1, "same.csv: every sample is the same (the covariance is 0)");
    snprintf(args, sizeof args, "analyze toy:moons --n 1 --out %s/an", dir);
    expect(args, 1, "toy:moons: 1 sample; a covariance needs at least 2");
    snprintf(args, sizeof args, "analyze toy:curves --n 10 --samples 20 --out %s/an --checkpoint %s/run/model.safetensors", dir, dir);
    expect(args, 1, "in another shape than toy:curves's");
    snprintf(args, sizeof args, "analyze toy:curves --n 10 --samples 20 --out %s/an", dir);
    CHECK(run(args, err, sizeof err) == 0, "analyze, fewer samples than dimensions: %s", err);
    snprintf(args, sizeof args, "%s analyze toy:curves --n 10 --samples 20 --out %s/an 2>/dev/null", bin, dir);
    char said[8192];
    CHECK(test_run_command(args, said, sizeof said) == 0 && strstr(said, "10 samples for 50 dimensions: the covariance is singular"),
          "analyze says the covariance is singular and what it did: %s", said);
    /* checkpoints */
    snprintf(args, sizeof args, "%s/run/model.safetensors", dir);
    FILE *f = fopen(args, "r+b");
    CHECK(f && ftruncate(fileno(f), 100) == 0, "truncate the checkpoint");
    if (f) fclose(f);
    snprintf(args, sizeof args, "info --checkpoint %s/run/model.safetensors", dir);
    expect(args, 1, "model.safetensors");
    snprintf(args, sizeof args, "info --checkpoint %s/none.safetensors", dir);
    expect(args, 1, "none.safetensors");
    snprintf(args, sizeof args, "rm -rf %s", dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
