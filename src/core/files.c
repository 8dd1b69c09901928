/* files.c - atomic writes (temp file + fsync + rename), whole-file reads and
 * mkdir -p (see files.h). */
#include "core/files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "core/dist.h"

static void release(dfn_atomic_file *af) {
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    af->fp = NULL;
}

dfn_status dfn_atomic_open(dfn_atomic_file *af, const char *path) {
    DFN_ASSERT(af && path);
    memset(af, 0, sizeof *af);
    if (!path[0]) return dfn_set_error(DFN_ERR_ARG, "cannot write a file with an empty name");
    size_t n = strlen(path);
    af->path = dfn_strdup(path);
    if (dfn_dist_rank() != 0) { /* several processes: rank 0 writes, the others' bytes go nowhere */
        af->discard = 1;
        af->tmp_path = dfn_strdup("/dev/null");
        af->fp = fopen(af->tmp_path, "wb");
        if (!af->fp) {
            release(af);
            return dfn_set_error(DFN_ERR_IO, "/dev/null: cannot open");
        }
        return DFN_OK;
    }
    af->tmp_path = dfn_malloc(n + 5);
    memcpy(af->tmp_path, path, n);
    memcpy(af->tmp_path + n, ".tmp", 5);
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        dfn_status st = dfn_set_error(DFN_ERR_IO, "%s: cannot create %s: %s", path,
                                      af->tmp_path, strerror(errno));
        release(af);
        return st;
    }
    af->status = DFN_OK;
    return DFN_OK;
}

dfn_status dfn_atomic_write(dfn_atomic_file *af, const void *data, size_t n) {
    DFN_ASSERT(af && af->fp && (data || n == 0));
    if (af->status != DFN_OK || n == 0) return af->status;
    if (fwrite(data, 1, n, af->fp) != n)
        af->status = dfn_set_error(DFN_ERR_IO, "%s: cannot write %s: %s", af->path,
                                   af->tmp_path, strerror(errno));
    return af->status;
}

/* After the rename, the new directory entry itself lives in the directory's
 * data; fsync the directory too so that the rename survives a power cut. This
 * is best effort: some file systems refuse to fsync directories. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = dfn_strdup(".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = dfn_malloc(n + 1);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

dfn_status dfn_atomic_commit(dfn_atomic_file *af) {
    DFN_ASSERT(af && af->fp);
    dfn_status st = af->status;
    if (af->discard) {
        fclose(af->fp);
        release(af);
        return st;
    }
    /* fflush moves the stdio buffer into the kernel; fsync moves the kernel's
     * pages onto the disk. Only then is renaming safe: otherwise a crash could
     * leave <path> pointing at a file whose blocks were never written. */
    if (st == DFN_OK && (fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0))
        st = dfn_set_error(DFN_ERR_IO, "%s: cannot write %s: %s", af->path, af->tmp_path,
                           strerror(errno));
    if (fclose(af->fp) != 0 && st == DFN_OK)
        st = dfn_set_error(DFN_ERR_IO, "%s: cannot close %s: %s", af->path, af->tmp_path,
                           strerror(errno));
    af->fp = NULL;
    if (st == DFN_OK && rename(af->tmp_path, af->path) != 0)
        st = dfn_set_error(DFN_ERR_IO, "%s: cannot rename %s to it: %s", af->path,
                           af->tmp_path, strerror(errno));
    if (st == DFN_OK)
        sync_parent_dir(af->path);
    else
        remove(af->tmp_path);
    release(af);
    return st;
}

void dfn_atomic_abort(dfn_atomic_file *af) {
    DFN_ASSERT(af);
    if (af->fp) {
        fclose(af->fp);
        if (!af->discard) remove(af->tmp_path);
    }
    release(af);
}

dfn_status dfn_atomic_write_file(const char *path, const void *data, size_t size) {
    dfn_atomic_file af;
    dfn_status st = dfn_atomic_open(&af, path);
    if (st) return st;
    dfn_atomic_write(&af, data, size);
    return dfn_atomic_commit(&af);
}

dfn_status dfn_write_text_file(const char *path, const char *text) {
    return dfn_atomic_write_file(path, text, strlen(text));
}

char *dfn_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        dfn_set_error(DFN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    dfn_buf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) dfn_buf_append(&b, chunk, got);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        dfn_buf_free(&b);
        dfn_set_error(DFN_ERR_IO, "%s: read error", path);
        return NULL;
    }
    if (!b.data) dfn_buf_append(&b, "", 0);
    if (size) *size = b.len;
    return b.data;
}

char *dfn_read_text_file(const char *path) { return dfn_read_file(path, NULL); }

int dfn_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

dfn_status dfn_make_dir(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return dfn_set_error(DFN_ERR_ARG, "%s: path too long", path);
    for (char *q = buf + 1; *q; q++) {
        if (*q != '/') continue;
        *q = 0;
        if (mkdir(buf, 0777) && errno != EEXIST)
            return dfn_set_error(DFN_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *q = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST)
        return dfn_set_error(DFN_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) || !S_ISDIR(st.st_mode))
        return dfn_set_error(DFN_ERR_IO, "%s: not a directory", buf);
    return DFN_OK;
}

dfn_status dfn_make_parent_dir(const char *file_path) {
    const char *slash = strrchr(file_path, '/');
    if (!slash || slash == file_path) return DFN_OK;
    size_t n = (size_t)(slash - file_path);
    char *dir = dfn_malloc(n + 1);
    memcpy(dir, file_path, n);
    dir[n] = 0;
    dfn_status st = dfn_make_dir(dir);
    free(dir);
    return st;
}

FILE *dfn_open_append(const char *path) {
    return fopen(dfn_dist_rank() == 0 ? path : "/dev/null", "a");
}
