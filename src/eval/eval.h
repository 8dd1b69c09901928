/* eval.h - what the likelihood and metric files share. Internal to src/eval. */
#ifndef DFN_EVAL_H
#define DFN_EVAL_H

#include "core.h"

/* The index of name in names[0..count), or -1 with a message "unknown <what>
 * 'name' (known: a, b, c)". */
int eval_lookup(const char *what, const char *name, const char *const *names, int count);
/* DFN_ERR_NUMERIC naming `what`, the row and the column of the first NaN or
 * Inf in x (n, dim); DFN_OK if there is none. */
dfn_status eval_check_finite(const char *what, const float *x, size_t n, size_t dim);

#endif
