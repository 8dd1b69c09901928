/* fid_monitor.c - quality during training (train --fid-every K): every K steps
 * (and at the end) the task draws fid_samples samples from the EMA weights,
 * always from the same noise, and their FID against the training images in
 * the evaluation classifier's features goes into log.csv's fid column, the
 * progress line and loss.png. The training images' features are extracted
 * once, at the start (dfn_feature_ref); so is the floor, the FID of as many
 * held-out images (the first of the validation set) against them: what a
 * model that had learnt the distribution exactly would score at this N (FID
 * is biased upwards at small N, Chong & Forsyth 2020, so the two are only
 * comparable at the same N). Training itself is untouched: the monitor draws
 * from streams of its own. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

dfn_status dfn_fid_monitor_begin(dfn_fid_monitor *m, const dfn_train_params *p,
                                 const dfn_train_task *task, const dfn_dataset *train,
                                 const dfn_dataset *val) {
    memset(m, 0, sizeof *m);
    m->floor = NAN;
    if (p->fid_every <= 0) return DFN_OK;
    if (!task->draw)
        return dfn_set_error(DFN_ERR_ARG, "an FID every %d steps: a %s model makes no samples",
                             p->fid_every, task->name);
    if (!p->fid_classifier)
        return dfn_set_error(DFN_ERR_ARG, "an FID every %d steps needs the evaluation classifier "
                                          "(fid_classifier)", p->fid_every);
    if (p->autoencoder)
        return dfn_set_error(DFN_ERR_ARG, "an FID during latent diffusion training is not "
                                          "supported (the training data are latents): evaluate "
                                          "checkpoints with diffusion eval fid");
    const int F = dfn_model_feature_dim(p->fid_classifier);
    if (p->fid_samples <= F)
        return dfn_set_error(DFN_ERR_ARG, "an FID of %d samples: it needs more than the classifier's "
                                          "%d features", p->fid_samples, F);
    int nd = dfn_dataset_shape(train, m->dims);
    if (nd != 3)
        return dfn_set_error(DFN_ERR_ARG, "an FID during training needs images; the data are vectors");
    dfn_status st = dfn_model_check_input(p->fid_classifier, nd, m->dims, "the training images");
    if (st || (st = dfn_feature_ref_new(&m->ref, p->fid_classifier, train)) != DFN_OK) return st;
    m->n = p->fid_samples;
    const size_t D = dfn_dataset_sample_size(train);
    m->x = dfn_malloc((size_t)m->n * D * sizeof(float));
    if (val && dfn_dataset_count(val) >= (size_t)m->n) {
        st = dfn_dataset_from_array(&m->held, dfn_dataset_sample(val, 0), (size_t)m->n, nd, m->dims,
                                    NULL, 0);
        if (!st) st = dfn_feature_ref_fid(m->ref, m->held, &m->floor);
    }
    if (st) dfn_fid_monitor_end(m);
    return st;
}

dfn_status dfn_fid_monitor_measure(dfn_fid_monitor *m, const dfn_train_params *p,
                                   const dfn_train_task *task, void *task_state, dfn_model *model,
                                   double *fid) {
    *fid = NAN;
    dfn_status st = task->draw(task_state, model, m->n, p->seed ^ 0x666964ull, /* "fid" */
                               p->fid_sampler, p->fid_steps, m->x);
    if (st) return st;
    dfn_dataset *s = NULL;
    if ((st = dfn_dataset_from_array(&s, m->x, (size_t)m->n, 3, m->dims, NULL, 0))) return st;
    st = dfn_feature_ref_fid(m->ref, s, fid);
    dfn_dataset_free(s);
    return st;
}

void dfn_fid_monitor_end(dfn_fid_monitor *m) {
    dfn_feature_ref_free(m->ref);
    dfn_dataset_free(m->held);
    free(m->x);
    memset(m, 0, sizeof *m);
    m->floor = NAN;
}
