/* eval.h - what fid.c and kid.c share: checking two image sets against each
 * other and against the classifier, and computing their features. */
#ifndef DFN_EVAL_H
#define DFN_EVAL_H

#include <stddef.h>

#include "diffusion.h"

/* The checks of dfn_fid / dfn_kid, in the order their messages document:
 * same shapes, the classifier's shape, at least min_count images per set
 * (the message quotes `need`, e.g. "FID needs at least D+1 = 129 samples per
 * set"), no NaN or Inf. */
dfn_status dfn_eval_check_sets(const dfn_classifier *c, const dfn_dataset *samples,
                               const dfn_dataset *reference, size_t min_count, const char *need);
/* Features (count, F) of every image of ds (malloc'ed; the caller frees). */
float *dfn_eval_features(dfn_classifier *c, const dfn_dataset *ds);

#endif
