/* eval.h - what the evaluation files share (internal to src/eval): checks of
 * sample sets, features for FID/KID, name lookups. */
#ifndef DFN_EVAL_H
#define DFN_EVAL_H

#include <stddef.h>

#include "core/core.h"
#include "diffusion/eval.h"

/* The checks of dfn_fid / dfn_kid, in the order their messages document:
 * same shapes, the classifier's shape, at least min_count images per set
 * (the message quotes `need`, e.g. "FID needs at least D+1 = 129 samples per
 * set"), no NaN or Inf. */
dfn_status dfn_eval_check_sets(const dfn_model *classifier, const dfn_dataset *samples,
                               const dfn_dataset *reference, size_t min_count, const char *need);
/* Features (count, F) of every image of ds (malloc'ed; the caller frees). */
float *dfn_eval_features(dfn_model *classifier, const dfn_dataset *ds);
/* DFN_ERR_ARG unless m is a classifier (a model with features). */
dfn_status dfn_eval_check_classifier(const dfn_model *m);

/* DFN_ERR_NUMERIC naming `what`, the row and the column of the first NaN or
 * Inf in x (n, dim); DFN_OK if there is none. */
dfn_status dfn_eval_check_finite(const char *what, const float *x, size_t n, size_t dim);

#endif
