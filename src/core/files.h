/* files.h - files whole: written atomically, read into memory, and the
 * directories they go in.
 *
 * Writing so that readers never see a file half-written. Every writer in diffusion.c (checkpoints, .npy arrays, training state) goes
 * through this helper. The bytes go to "<path>.tmp"; commit flushes them to the
 * disk (fsync) and renames the temporary file over <path>. rename() within one
 * directory is atomic on POSIX file systems, so after a crash or a full disk
 * <path> holds either the complete old file or the complete new one, never a
 * truncated mix - a training run killed while saving keeps its last checkpoint.
 *
 * Errors are sticky: after the first failed write, later writes do nothing and
 * commit returns the first error (its message names <path> and the cause). A
 * writer can therefore issue all its writes and check once, at commit:
 *
 *     dfn_atomic_file af;
 *     dfn_status st = dfn_atomic_open(&af, path);
 *     if (st != DFN_OK) return st;
 *     dfn_atomic_write(&af, header, header_len);
 *     dfn_atomic_write(&af, data, data_len);
 *     return dfn_atomic_commit(&af);   // or dfn_atomic_abort(&af) to give up
 *
 * Under MPI (dist.h) only rank 0 writes: on the other ranks, which compute the
 * same bytes, open succeeds and the bytes go to /dev/null.
 *
 * commit and abort both release the handle and remove the temporary file on
 * failure; call exactly one of them after a successful open.
 */
#ifndef DFN_FILES_H
#define DFN_FILES_H

#include <stddef.h>
#include <stdio.h>

#include "diffusion/core.h"

typedef struct {
    FILE *fp;          /* the open "<path>.tmp"; NULL once closed */
    char *path;        /* the final path (owned copy) */
    char *tmp_path;    /* path + ".tmp" (owned copy) */
    dfn_status status; /* DFN_OK, or the first error (message already recorded) */
    int discard;       /* a rank other than 0 of several processes: nothing is written */
} dfn_atomic_file;

/* Creates (truncates) "<path>.tmp" for writing. DFN_ERR_IO naming the file if it
 * cannot be created (missing directory, no permission). On failure nothing is
 * left to release. */
dfn_status dfn_atomic_open(dfn_atomic_file *af, const char *path);

/* Appends n bytes. Returns the handle's status (sticky: DFN_OK until a write fails). */
dfn_status dfn_atomic_write(dfn_atomic_file *af, const void *data, size_t n);

/* Flushes, fsyncs, closes and renames "<path>.tmp" to <path>. On any failure
 * (including an earlier write) removes the temporary file, leaves <path>
 * untouched and returns DFN_ERR_IO. Releases the handle either way. */
dfn_status dfn_atomic_commit(dfn_atomic_file *af);

/* Closes and removes the temporary file without touching <path>. Releases the
 * handle; harmless on a handle already committed or aborted. */
void dfn_atomic_abort(dfn_atomic_file *af);

/* The whole of a buffer into path, the same way: open, write, commit. */
dfn_status dfn_atomic_write_file(const char *path, const void *data, size_t size);
/* A NUL-terminated string into path, the same way. */
dfn_status dfn_write_text_file(const char *path, const char *text);

/* A whole file as malloc'ed bytes, *size of them (size may be NULL), with a
 * NUL after the last; NULL with a message naming the file (DFN_ERR_IO) if it
 * cannot be read. */
char *dfn_read_file(const char *path, size_t *size);
/* The same for a (small) text file: a NUL-terminated string. */
char *dfn_read_text_file(const char *path);

/* Opens path for appending (a log written row by row, not atomically); under
 * MPI ranks other than 0 get /dev/null, as dfn_atomic_open gives them. NULL
 * (errno set) on failure. */
FILE *dfn_open_append(const char *path);

/* mkdir -p: path and every missing parent. DFN_ERR_IO naming the directory
 * that could not be made, or the path that exists but is not a directory. */
dfn_status dfn_make_dir(const char *path);
/* mkdir -p of the directory part of a file's path (nothing for a bare name). */
dfn_status dfn_make_parent_dir(const char *file_path);
/* 1 if something exists at path (a file, a directory, ...). */
int dfn_path_exists(const char *path);

#endif
