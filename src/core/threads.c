/* threads.c - the thread count of every parallel loop. */
#include <omp.h>

#include "core/core.h"

void dfn_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}

int dfn_get_threads(void) { return omp_get_max_threads(); }
