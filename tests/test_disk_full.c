/* test_disk_full.c - writing onto a full file system: a checkpoint (training
 * state), a PNG and an .npy. Each command must stop with a message naming the
 * file it could not write and a non-zero exit, leave the previous file intact
 * (byte for byte) and leave no temporary file behind. The file system is a
 * 1 MiB tmpfs where the machine lets the test mount one (root), else a file
 * size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so writes fail with EFBIG;
 * DFN_TEST_NO_TMPFS=1 forces this). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "diffusion.h"
#include "test_util.h"

static const char *bin;
static char dir[] = "/tmp/dfn_diskfull_XXXXXX";
static int use_tmpfs;
static long fsize_limit = -1; /* bytes; -1: none */

/* Runs bin with argv; its stderr into err. Returns the exit status. */
static int run(char *const argv[], char *err, size_t n) {
    int fds[2];
    if (pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        if (fsize_limit >= 0) {
            signal(SIGXFSZ, SIG_IGN); /* kept across exec: write() fails with EFBIG */
            struct rlimit r = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            setrlimit(RLIMIT_FSIZE, &r);
        }
        execv(bin, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fds[0], err + got, n - 1 - got)) > 0) got += (size_t)r;
    err[got] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

/* Fills the file system until `leave` bytes are free (tmpfs); a no-op under a
 * file size limit. */
static void fill(const char *fs, long leave) {
    if (!use_tmpfs) return;
    char path[600];
    snprintf(path, sizeof path, "%s/filler", fs);
    unlink(path);
    FILE *f = fopen(path, "wb");
    static char block[4096];
    while (f && fwrite(block, 1, sizeof block, f) == sizeof block && fflush(f) == 0) {}
    if (f) fclose(f);
    struct stat sb;
    if (stat(path, &sb) == 0 && truncate(path, sb.st_size > leave ? sb.st_size - leave : 0)) {}
}

/* The command fails naming `file`, `file` keeps its bytes, no file.tmp is left. */
static void expect_clean_failure(const char *what, char *const argv[], const char *file) {
    size_t n0 = 0, n1 = 0;
    char *before = slurp(file, &n0), err[4096], tmp[700];
    int rc = run(argv, err, sizeof err);
    char *after = slurp(file, &n1);
    printf("  %s: exit %d: %s", what, rc, err);
    CHECK(rc != 0, "%s: exit %d on a full file system", what, rc);
    CHECK(strstr(err, file) != NULL, "%s: the message names %s: %s", what, file, err);
    CHECK(before && after && n0 == n1 && !memcmp(before, after, n0), "%s: the previous %s is intact", what, file);
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    CHECK(access(tmp, F_OK) != 0, "%s: %s is removed", what, tmp);
    free(before);
    free(after);
}

int main(void) {
    bin = test_program();
    if (!mkdtemp(dir)) return 2;
    use_tmpfs = !getenv("DFN_TEST_NO_TMPFS") && geteuid() == 0 && mount("tmpfs", dir, "tmpfs", 0, "size=1m") == 0;
    printf("  full file system: %s\n", use_tmpfs ? "a 1 MiB tmpfs" : "a file size limit (RLIMIT_FSIZE)");

    char run_dir[300], model[400], latest[400], png[400], npy[400], err[4096];
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    snprintf(model, sizeof model, "%s/model.safetensors", run_dir);
    snprintf(latest, sizeof latest, "%s/latest.safetensors", run_dir);
    snprintf(png, sizeof png, "%s/grid.png", dir);
    snprintf(npy, sizeof npy, "%s/x.npy", dir);

    /* a finished run, and earlier outputs, while there is room */
    char *train[] = {(char *)bin, "train", "--data", "toy:moons", "--n", "500", "--steps", "20", "--batch", "32",
                     "--width", "32", "--depth", "2", "--save-every", "10", "--samples", "0", "--quiet",
                     "--out", run_dir, NULL};
    CHECK(run(train, err, sizeof err) == 0, "the first run: %s", err);
    char *sample_png[] = {(char *)bin, "sample", "--checkpoint", model, "--n", "256", "--out", png, "--quiet", NULL};
    char *sample_npy[] = {(char *)bin, "sample", "--checkpoint", model, "--n", "4096", "--out", npy, "--quiet", NULL};
    CHECK(run(sample_png, err, sizeof err) == 0, "a first PNG: %s", err);
    char *small_npy[] = {(char *)bin, "sample", "--checkpoint", model, "--n", "4", "--out", npy, "--quiet", NULL};
    CHECK(run(small_npy, err, sizeof err) == 0, "a first .npy: %s", err);

    /* a resumed run whose next latest.safetensors does not fit (the log fits) */
    fill(dir, 16 << 10);
    fsize_limit = use_tmpfs ? -1 : 16 << 10;
    char *resume[] = {(char *)bin, "train", "--out", run_dir, "--resume", "--steps", "30", "--quiet", NULL};
    expect_clean_failure("train --resume", resume, latest);
    /* the run is not lost: with room again it resumes and finishes */
    fill(dir, 0), fsize_limit = -1;
    if (use_tmpfs) {
        char filler[400];
        snprintf(filler, sizeof filler, "%s/filler", dir);
        unlink(filler);
    }
    CHECK(run(resume, err, sizeof err) == 0, "resumed with room: %s", err);

    fill(dir, 0);
    fsize_limit = use_tmpfs ? -1 : 0;
    expect_clean_failure("sample to PNG", sample_png, png);
    expect_clean_failure("sample to .npy", sample_npy, npy);

    if (use_tmpfs) umount(dir);
    snprintf(run_dir, sizeof run_dir, "rm -rf '%s'", dir);
    if (system(run_dir)) return 2;
    TEST_MAIN_END();
}
