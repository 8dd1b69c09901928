/* text_file.c - small text files whole: read into a string, write atomically. */
#include <errno.h>
#include <string.h>

#include "core.h"
#include "io/atomic_file.h"
#include "train/train.h"

char *dfn_read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        dfn_set_error(DFN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = dfn_malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            DFN_ASSERT(grown);
            buf = grown;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        dfn_set_error(DFN_ERR_IO, "%s: read error", path);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

dfn_status dfn_write_text_file(const char *path, const char *text) {
    return dfn_atomic_write_file(path, text, strlen(text));
}
