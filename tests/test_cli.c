/* test_cli.c - the `diffusion` program on bad input: each case must exit
 * non-zero with a message that names the option or file and the problem, and
 * must not crash (a signal) or leave a half-written file behind. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
    bin = getenv("DFN_BIN");
    if (!bin) {
        printf("SKIPPED: DFN_BIN (the diffusion program) is not set; run through ctest\n");
        return 77;
    }
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
    snprintf(args, sizeof args, "train --data fashion-mnist --out %s/a --channels 48", dir);
    expect(args, 1, "not divisible by groups");
    snprintf(args, sizeof args, "%s/mix.json", dir);
    FILE *mj = fopen(args, "w");
    if (mj) {
        fputs("{\"weights\": [1], \"means\": [1, 2]}", mj);
        fclose(mj);
    }
    snprintf(args, sizeof args, "train --data mixture:%s/mix.json --out %s/a", dir, dir);
    expect(args, 1, "mix.json: needs \"weights\"");
    /* a finished small run, then the same directory again */
    snprintf(args, sizeof args, "train --data toy:moons --n 256 --out %s/run --steps 3 --batch 32 --quiet --samples 0", dir);
    CHECK(run(args, err, sizeof err) == 0, "small run: %s", err);
    expect(args, 1, "already holds a training run");
    /* sampling from that run */
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.csv --n 10 --steps 5 --quiet", dir, dir);
    CHECK(run(args, err, sizeof err) == 0, "sample: %s", err);
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --sampler dpm++9", dir, dir);
    expect(args, 2, "dpm++9");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --steps 5000", dir, dir);
    expect(args, 1, "5000");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --sampler ode-rk45", dir, dir);
    expect(args, 1, "does not fit this checkpoint's process");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --spacing sideways", dir, dir);
    expect(args, 2, "sideways");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.png --class 3", dir, dir);
    expect(args, 1, "trained unconditionally");
    snprintf(args, sizeof args, "sample --checkpoint %s/nothing.safetensors --out %s/s.png", dir, dir);
    expect(args, 1, "nothing.safetensors");
    snprintf(args, sizeof args, "sample --checkpoint %s/run/model.safetensors --out %s/s.txt", dir, dir);
    expect(args, 2, "use .png, .svg, .npy or .csv");
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
    snprintf(args, sizeof args, "%s/nan.npy", dir);
    CHECK(dfn_npy_write_f32(args, nan_rows, 2, (int64_t[]){4, 2}) == DFN_OK, "npy");
    snprintf(args, sizeof args, "eval mmd --data toy:moons --samples %s/nan.npy", dir);
    expect(args, 1, "nan.npy: dataset: sample 2, element 0 is NaN");
    snprintf(args, sizeof args, "eval nll --data toy:moons --checkpoint %s/run/model.safetensors --divergence psychic", dir);
    expect(args, 1, "psychic");
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
