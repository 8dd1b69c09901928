/* eval.h - what the evaluation files share (internal to src/eval): checks of
 * sample sets, features for FID/KID, name lookups. */
#ifndef DFN_EVAL_H
#define DFN_EVAL_H

#include <stddef.h>

#include "core.h"
#include "diffusion.h"

/* The checks of dfn_fid / dfn_kid, in the order their messages document:
 * same shapes, the classifier's shape, at least min_count images per set
 * (the message quotes `need`, e.g. "FID needs at least D+1 = 129 samples per
 * set"), no NaN or Inf. */
dfn_status dfn_eval_check_sets(const dfn_classifier *c, const dfn_dataset *samples,
                               const dfn_dataset *reference, size_t min_count, const char *need);
/* Features (count, F) of every image of ds (malloc'ed; the caller frees). */
float *dfn_eval_features(dfn_classifier *c, const dfn_dataset *ds);

/* The index of name in names[0..count), or -1 with a message "unknown <what>
 * 'name' (known: a, b, c)". */
int dfn_eval_lookup(const char *what, const char *name, const char *const *names, int count);
/* DFN_ERR_NUMERIC naming `what`, the row and the column of the first NaN or
 * Inf in x (n, dim); DFN_OK if there is none. */
dfn_status dfn_eval_check_finite(const char *what, const float *x, size_t n, size_t dim);

#endif
