/* test_kill.c - crash safety of training: `diffusion train` killed with
 * SIGKILL at least 20 times: every third kill the moment a checkpoint is being
 * written (the kill waits for latest.safetensors.tmp to appear), some at
 * start-up, the rest after a random number of logged steps (10 to 60); resumed
 * with `--resume` alone after each kill. After every kill,
 * every checkpoint in the run directory must load (no torn file, ever); at the
 * end the run must be byte-identical to one that was never interrupted: every
 * .safetensors file, and log.csv but for its timing columns. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "diffusion.h"
#include "io/safetensors.h"
#include "test_util.h"

static const char *bin;
static char dir[] = "/tmp/dfn_kill_XXXXXX";

#define TRAIN_ARGS "train", "--data", "toy:moons", "--n", "1000", "--steps", "1000", "--batch", "32", \
                   "--width", "32", "--depth", "2", "--save-every", "10", "--ckpt-every", "100",     \
                   "--val-every", "50", "--samples", "0", "--quiet", "--threads", "1"

static pid_t start(char *const argv[]) {
    pid_t pid = fork();
    if (pid == 0) {
        if (!getenv("DFN_TEST_VERBOSE")) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 2);
        }
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Every .safetensors file in run loads: the model files as pipelines, the
 * training state as safetensors. Returns how many files were checked. */
static int check_files(const char *run, int kill_no) {
    DIR *d = opendir(run);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || strcmp(dot, ".safetensors")) continue; /* .tmp files are the unfinished ones */
        char path[600];
        snprintf(path, sizeof path, "%s/%s", run, e->d_name);
        dfn_st_file *f = NULL;
        if (!strcmp(e->d_name, "latest.safetensors")) {
            CHECK(dfn_st_open(&f, path) == DFN_OK, "after kill %d: %s", kill_no, dfn_last_error());
            dfn_st_close(f);
        } else {
            dfn_pipeline *p = NULL;
            CHECK(dfn_pipeline_load(&p, path) == DFN_OK, "after kill %d: %s", kill_no, dfn_last_error());
            dfn_pipeline_free(p);
        }
        n++;
    }
    if (d) closedir(d);
    return n;
}

/* The first five columns of log.csv (step, loss, val_loss, lr, grad_norm). */
static char *log_without_timing(const char *run) {
    char path[600];
    snprintf(path, sizeof path, "%s/log.csv", run);
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap), line[512];
    while (fgets(line, sizeof line, f)) {
        int commas = 0;
        for (char *c = line; *c; c++)
            if (*c == ',' && ++commas == 5) *c = '\n', c[1] = 0;
        size_t l = strlen(line);
        if (len + l + 1 > cap) out = realloc(out, cap *= 2);
        memcpy(out + len, line, l + 1);
        len += l;
    }
    fclose(f);
    return out;
}

/* The step of log.csv's last complete row (0: none). */
static long last_logged_step(const char *run) {
    char path[600], line[512];
    snprintf(path, sizeof path, "%s/log.csv", run);
    FILE *f = fopen(path, "r");
    long step = 0;
    while (f && fgets(line, sizeof line, f))
        if (strchr(line, '\n') && line[0] >= '0' && line[0] <= '9') step = atol(line);
    if (f) fclose(f);
    return step;
}

static int same_file(const char *a, const char *b) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

int main(void) {
    bin = test_program();
    if (!mkdtemp(dir)) return 2;
    char ref[300], run[300];
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(run, sizeof run, "%s/killed", dir);

    /* the uninterrupted run, timed for the record */
    char *ref_argv[] = {(char *)bin, TRAIN_ARGS, "--out", ref, NULL};
    double t0 = now();
    CHECK(wait_exit(start(ref_argv)) == 0, "the uninterrupted run");
    const double duration = now() - t0;

    char *first_argv[] = {(char *)bin, TRAIN_ARGS, "--out", run, NULL};
    char *resume_argv[] = {(char *)bin, "train", "--out", run, "--resume", "--quiet", NULL};
    char tmp_path[400];
    snprintf(tmp_path, sizeof tmp_path, "%s/latest.safetensors.tmp", run);
    uint64_t lcg = 0x9e3779b97f4a7c15ull;
    int kills = 0, during_writes = 0, rc = -1, files = 0, started = 0, n_steps = 0;
    char steps[1024] = "";
    for (int attempt = 0; attempt < 200 && rc != 0; attempt++) {
        /* the first start, again if a kill came before config.json was written */
        struct stat sb;
        char cfg[400];
        snprintf(cfg, sizeof cfg, "%s/config.json", run);
        pid_t pid = start(started && stat(cfg, &sb) == 0 ? resume_argv : first_argv);
        started = 1;
        if (kills >= 20) { /* enough: let it finish */
            rc = wait_exit(pid);
            break;
        }
        lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
        const double u = (double)(lcg >> 40) / (1 << 24);
        /* three kinds of moments: while a checkpoint is being written; at
         * start-up (the first 50 ms); after a random number of logged steps */
        const int at_write = kills % 3 == 2, early = kills % 5 == 0 && !at_write;
        const long from = last_logged_step(run), ahead = 10 + (long)(u * 50);
        const double t_start = now();
        int exited = 0, status;
        while (!(exited = waitpid(pid, &status, WNOHANG)) && now() - t_start < 60) {
            if (at_write ? stat(tmp_path, &sb) == 0
                         : early ? now() - t_start > u * 0.05 : last_logged_step(run) >= from + ahead)
                break;
            if (!at_write) usleep(200);
        }
        if (exited) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            CHECK(rc == 0, "attempt %d ended with %d without being killed", attempt, rc);
            break;
        }
        kill(pid, SIGKILL);
        CHECK(wait_exit(pid) == -SIGKILL, "killed");
        kills++;
        during_writes += at_write && stat(tmp_path, &sb) == 0;
        files += check_files(run, kills);
        long step = last_logged_step(run);
        n_steps += snprintf(steps + n_steps, sizeof steps - n_steps, "%s%ld%s", kills > 1 ? " " : "", step,
                            at_write ? "w" : "");
    }
    printf("  %d kills (%d while latest.safetensors was being written), %d checkpoint loads after them; "
           "uninterrupted run %.1f s\n  last step logged at each kill (w: killed writing a checkpoint): %s\n",
           kills, during_writes, files, duration, steps);
    CHECK(rc == 0, "the killed run finished");
    CHECK(kills >= 20, "%d kills", kills);
    CHECK(during_writes >= 3, "%d kills during a checkpoint write", during_writes);

    /* the end: byte-identical */
    DIR *d = opendir(ref);
    struct dirent *e;
    int compared = 0;
    while (d && (e = readdir(d))) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || strcmp(dot, ".safetensors")) continue;
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/%s", ref, e->d_name);
        snprintf(b, sizeof b, "%s/%s", run, e->d_name);
        CHECK(same_file(a, b), "%s: the killed and resumed run differs from the uninterrupted one", e->d_name);
        compared++;
    }
    if (d) closedir(d);
    char *la = log_without_timing(ref), *lb = log_without_timing(run);
    CHECK(strlen(la) > 100 && !strcmp(la, lb), "log.csv (step, loss, val_loss, lr, grad_norm) differs");
    printf("  %d checkpoint files and log.csv byte-identical to the uninterrupted run\n", compared);
    CHECK(compared >= 5, "compared %d files", compared);
    free(la);
    free(lb);
    if (getenv("DFN_TEST_KEEP")) TEST_MAIN_END();
    snprintf(ref, sizeof ref, "rm -rf '%s'", dir);
    if (system(ref)) return 2;
    TEST_MAIN_END();
}
