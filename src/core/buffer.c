/* buffer.c - a growable, NUL-terminated byte buffer (see core.h). */
#include <stdarg.h>
#include <string.h>

#include "core/core.h"

/* Room for n more bytes and the terminating NUL. */
static void reserve(dfn_buf *b, size_t n) {
    DFN_ASSERT(n < SIZE_MAX / 2 - b->len);
    if (b->len + n + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
        fprintf(stderr, "diffusion: out of memory growing a buffer to %zu bytes\n", cap);
        abort();
    }
    b->data = grown;
    b->cap = cap;
}

void dfn_buf_append(dfn_buf *b, const void *data, size_t n) {
    DFN_ASSERT(b && (data || n == 0));
    reserve(b, n);
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
}

void dfn_buf_printf(dfn_buf *b, const char *fmt, ...) {
    DFN_ASSERT(b && fmt);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    DFN_ASSERT(n >= 0);
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void dfn_buf_free(dfn_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
