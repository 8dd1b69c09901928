/* hash.c - a 64-bit fingerprint of bytes: FNV-1a (Fowler, Noll, Vo), which
 * tells one file, configuration or set of weights from another (it is no
 * defence against someone forging a collision). */
#include "core/core.h"

uint64_t dfn_fnv1a(const void *bytes, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* the offset basis */
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)bytes)[i]) * 0x100000001b3ull;
    return h;
}
