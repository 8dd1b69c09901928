/* test_tmpdir.h - a temporary directory for tests that write files: paths in
 * it are remembered (with their ".tmp" siblings) and removed by tmp_cleanup. */
#ifndef DFN_TEST_TMPDIR_H
#define DFN_TEST_TMPDIR_H

#include <stdio.h>
#include <unistd.h>

#include "core/core.h"

static char tmpdir[64];
static char tmp_created[64][256];
static int tmp_n_created;

/* tmpdir/name, remembered for cleanup. */
static inline const char *tmp_path(const char *name) {
    DFN_ASSERT(tmp_n_created < 64);
    snprintf(tmp_created[tmp_n_created], sizeof tmp_created[0], "%s/%s", tmpdir, name);
    return tmp_created[tmp_n_created++];
}

static inline void cleanup(void) {
    char buf[300];
    for (int i = 0; i < tmp_n_created; i++) {
        remove(tmp_created[i]);
        snprintf(buf, sizeof buf, "%.255s.tmp", tmp_created[i]);
        remove(buf);
    }
    rmdir(tmpdir);
}

#endif
