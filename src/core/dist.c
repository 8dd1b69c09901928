/* dist.c - processes over MPI (core.h's dfn_dist_*, dist.h): one rank and
 * no-ops without MPI; with it, a duplicate of MPI_COMM_WORLD, a running sum
 * passed rank to rank in shard order, copies by broadcast, and agreement on
 * errors so that no rank is left waiting for one that failed. */
#include "core/dist.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "core/files.h"

#ifdef DFN_HAVE_MPI
#include <mpi.h>
#endif

static int world_rank = 0, world_size = 1;
static double exchange_seconds = 0;

int dfn_dist_rank(void) { return world_rank; }
int dfn_dist_size(void) { return world_size; }
double dfn_dist_seconds(void) { return exchange_seconds; }

/* The contiguous block [*lo, *hi) of n items that `rank` of `size` owns. */
static void split(size_t n, int rank, int size, size_t *lo, size_t *hi) {
    DFN_ASSERT(size >= 1 && rank >= 0 && rank < size);
    const size_t q = n / (size_t)size, r = n % (size_t)size, k = (size_t)rank;
    *lo = k * q + DFN_MIN(k, r);
    *hi = *lo + q + (k < r);
}

size_t *dfn_dist_blocks(size_t items, size_t rows_per_item, size_t rows) {
    const int size = dfn_dist_size();
    size_t *first = dfn_malloc(((size_t)size + 1) * sizeof(size_t)), end;
    for (int r = 0; r < size; r++) {
        split(items, r, size, &first[r], &end);
        first[r] = DFN_MIN(first[r] * rows_per_item, rows);
    }
    first[size] = rows;
    return first;
}

void dfn_dist_add(float *acc, const float *g, size_t n) {
    for (size_t i = 0; i < n; i++) acc[i] += g[i];
}

/* The process count mpirun (Open MPI, or a PMI launcher) announces, 0 if none. */
static int launched_size(void) {
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s) s = getenv("PMI_SIZE");
    return s ? atoi(s) : 0;
}

#ifndef DFN_HAVE_MPI

int dfn_dist_built_with_mpi(void) { return 0; }

dfn_status dfn_dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (launched_size() > 1)
        return dfn_set_error(DFN_ERR_ARG,
                             "started by mpirun as one of %d processes, but this build has no MPI "
                             "(install libopenmpi-dev and rebuild): each process would run alone",
                             launched_size());
    return DFN_OK;
}
int dfn_dist_finish(int code) { return code; }
dfn_status dfn_dist_agree(dfn_status st) { return st; }
void dfn_dist_ordered_sum(float *acc, float *const *own, int count, size_t n) {
    (void)acc, (void)own, (void)count, (void)n;
}
void dfn_dist_allgather_rows(void *data, size_t row_bytes, const size_t *first) {
    (void)data, (void)row_bytes, (void)first;
}
void dfn_dist_broadcast(void *data, size_t bytes, int root) { (void)data, (void)bytes, (void)root; }
int dfn_dist_differs(const void *bytes, size_t n, const char *noun, char *what, size_t size) {
    (void)bytes, (void)n, (void)noun, (void)what, (void)size;
    return 0;
}
dfn_status dfn_dist_check_shared_dir(const char *dir) {
    (void)dir;
    return DFN_OK;
}

#else

static MPI_Comm comm = MPI_COMM_NULL;
/* Ranks > 0 keep their stderr back in a temporary file (kept_fd, which fd 2
 * then shares) and show it on the real stderr only if they fail alone: at
 * dfn_dist_finish, on a fatal signal, at an exit that skips finish, or when a
 * sanitizer stops the process. */
static int real_stderr = -1, kept_fd = -1;
static char rank_prefix[32];
static volatile sig_atomic_t kept_shown, finished;

#ifdef DFN_SANITIZED
void __sanitizer_set_death_callback(void (*callback)(void)); /* (the sanitizers' runtime) */
#endif

/* Writes the kept-back bytes to the real stderr, each line prefixed with the
 * rank; async-signal-safe (pread and write only). */
static void show_kept_back(void) {
    if (kept_fd < 0 || real_stderr < 0 || kept_shown) return;
    kept_shown = 1;
    char buf[4096];
    ssize_t got;
    int line_start = 1;
    for (off_t at = 0; (got = pread(kept_fd, buf, sizeof buf, at)) > 0; at += got)
        for (ssize_t i = 0, j; i < got; i = j) {
            if (line_start && write(real_stderr, rank_prefix, strlen(rank_prefix)) < 0) return;
            for (j = i; j < got && buf[j] != '\n'; j++) {}
            line_start = j < got;
            j += line_start;
            if (write(real_stderr, buf + i, (size_t)(j - i)) < 0) return;
        }
}

static void show_at_exit(void) {
    if (!finished) show_kept_back();
}

static void on_fatal_signal(int sig) {
    show_kept_back();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void keep_back_stderr(void) {
    FILE *kept = tmpfile(); /* (left open: its descriptor lives as long as the process) */
    if (!kept) return;
    kept_fd = fileno(kept);
    real_stderr = dup(STDERR_FILENO);
    if (real_stderr < 0 || dup2(kept_fd, STDERR_FILENO) < 0) {
        kept_fd = -1;
        return;
    }
    snprintf(rank_prefix, sizeof rank_prefix, "rank %d: ", world_rank);
    atexit(show_at_exit);
#ifdef DFN_SANITIZED
    __sanitizer_set_death_callback(show_kept_back);
    const int fatal[] = {SIGABRT}; /* (the sanitizers report the others themselves) */
#else
    const int fatal[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#endif
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) signal(fatal[i], on_fatal_signal);
}

int dfn_dist_built_with_mpi(void) { return 1; }

dfn_status dfn_dist_init(int *argc, char ***argv) {
    if (launched_size() < 1 && !getenv("PMIX_RANK")) return DFN_OK; /* not under mpirun */
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    MPI_Comm_rank(comm, &world_rank);
    MPI_Comm_size(comm, &world_size);
    if (world_rank > 0) { /* rank 0 speaks for all */
        fflush(stdout);
        fflush(stderr);
        if (!freopen("/dev/null", "w", stdout)) return dfn_set_error(DFN_ERR_IO, "/dev/null: cannot open");
        keep_back_stderr();
    }
    return DFN_OK;
}

/* Where this rank's messages reach the user. */
static int user_stderr(void) { return real_stderr >= 0 ? real_stderr : STDERR_FILENO; }

#define FINISH_WAIT_SECONDS 30.0

int dfn_dist_finish(int code) {
    if (comm == MPI_COMM_NULL) return code;
    int *codes = dfn_calloc((size_t)world_size, sizeof(int));
    MPI_Request req;
    MPI_Iallgather(&code, 1, MPI_INT, codes, 1, MPI_INT, comm, &req);
    const double start = dfn_now_seconds();
    for (int done = 0;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) break;
        /* a rank that succeeded waits as long as the others work; one that failed
         * may have left others waiting for it in an exchange: stop them all */
        if (code != 0 && dfn_now_seconds() - start > FINISH_WAIT_SECONDS) {
            show_kept_back();
            dprintf(user_stderr(), "rank %d: failed (exit code %d) and the other ranks did not finish "
                    "within %.0f s; stopping all of them\n", world_rank, code, FINISH_WAIT_SECONDS);
            MPI_Abort(comm, code);
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    int result = 0;
    for (int r = 0; r < world_size && !result; r++) result = codes[r];
    if (world_rank > 0 && code != 0 && codes[0] == 0) show_kept_back();
    finished = 1;
    if (real_stderr >= 0) dup2(real_stderr, STDERR_FILENO); /* what MPI_Finalize says is shown */
    free(codes);
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return result;
}

dfn_status dfn_dist_agree(dfn_status st) {
    if (world_size == 1) return st;
    const double start = dfn_now_seconds();
    int mine = (int)st, *all = dfn_calloc((size_t)world_size, sizeof(int));
    MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, comm);
    int bad = -1;
    for (int r = 0; r < world_size && bad < 0; r++)
        if (all[r] != DFN_OK) bad = r;
    dfn_status result = bad < 0 ? DFN_OK : (dfn_status)all[bad];
    free(all);
    if (bad >= 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", world_rank == bad ? dfn_last_error() : "");
        MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, bad, comm);
        if (bad > 0) dfn_set_error(result, "rank %d: %s", bad, msg);
        else if (world_rank != bad) dfn_set_error(result, "%s", msg);
    }
    exchange_seconds += dfn_now_seconds() - start;
    return result;
}

#define SUM_CHUNK ((size_t)1 << 18) /* floats of the running sum per message (1 MiB) */
#define SUM_TAG 17

void dfn_dist_ordered_sum(float *acc, float *const *own, int count, size_t n) {
    if (world_size == 1) return;
    const double start = dfn_now_seconds();
    /* acc = ((acc_from_previous_rank + own[0]) + own[1]) + ..., chunk by chunk, so
     * rank r + 1 adds chunk c while rank r adds chunk c + 1 */
    for (size_t at = 0; at < n; at += SUM_CHUNK) {
        const int len = (int)DFN_MIN(SUM_CHUNK, n - at);
        float *a = acc + at;
        if (world_rank > 0) {
            MPI_Recv(a, len, MPI_FLOAT, world_rank - 1, SUM_TAG, comm, MPI_STATUS_IGNORE);
            for (int j = 0; j < count; j++) dfn_dist_add(a, own[j] + at, (size_t)len);
        }
        if (world_rank < world_size - 1) MPI_Send(a, len, MPI_FLOAT, world_rank + 1, SUM_TAG, comm);
    }
    exchange_seconds += dfn_now_seconds() - start;
    dfn_dist_broadcast(acc, n * sizeof(float), world_size - 1);
}

void dfn_dist_broadcast(void *data, size_t bytes, int root) {
    if (world_size == 1) return;
    const double start = dfn_now_seconds();
    const size_t chunk = (size_t)1 << 30;
    for (size_t at = 0; at < bytes; at += chunk)
        MPI_Bcast((char *)data + at, (int)DFN_MIN(chunk, bytes - at), MPI_BYTE, root, comm);
    exchange_seconds += dfn_now_seconds() - start;
}

void dfn_dist_allgather_rows(void *data, size_t row_bytes, const size_t *first) {
    for (int r = 0; r < world_size && world_size > 1; r++)
        dfn_dist_broadcast((char *)data + first[r] * row_bytes, (first[r + 1] - first[r]) * row_bytes, r);
}

int dfn_dist_differs(const void *bytes, size_t n, const char *noun, char *what, size_t size) {
    if (world_size == 1) return 0;
    uint64_t h = dfn_fnv1a(bytes, n);
    uint64_t *all = dfn_calloc((size_t)world_size, sizeof *all);
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, comm);
    int differs = 0;
    for (int r = 1; r < world_size && !differs; r++)
        if (all[r] != all[0]) {
            snprintf(what, size, "rank %d was started with other %s than rank 0", r, noun);
            differs = 1;
        }
    free(all);
    return differs;
}

dfn_status dfn_dist_check_shared_dir(const char *dir) {
    if (world_size == 1) return DFN_OK;
    char token[96];
    snprintf(token, sizeof token, "%d %.9f\n", (int)getpid(), dfn_now_seconds());
    dfn_dist_broadcast(token, sizeof token, 0);
    dfn_buf path = {0};
    dfn_buf_printf(&path, "%s/.ranks-%.*s", dir, (int)strcspn(token, " "), token);
    dfn_status st = world_rank == 0 ? dfn_write_text_file(path.data, token) : DFN_OK;
    if ((st = dfn_dist_agree(st)) == DFN_OK) {
        if (world_rank > 0) {
            char *seen = dfn_read_text_file(path.data);
            if (!seen || strcmp(seen, token))
                st = dfn_set_error(DFN_ERR_IO,
                                   "%s: does not see %s, which rank 0 wrote there: the run "
                                   "directory must be on a file system that every rank shares",
                                   dir, path.data);
            free(seen);
        }
        st = dfn_dist_agree(st);
        if (world_rank == 0) unlink(path.data);
    }
    dfn_buf_free(&path);
    return st;
}

#endif
