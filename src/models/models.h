/* models.h - what the rest of the library uses of src/models beyond the public
 * section (diffusion/models.h): model-shaped arrays in safetensors files (the
 * trainer's state holds the weights, their EMA and the AdamW moments) and
 * swapping a model's parameter array (the trainer's EMA weights). */
#ifndef DFN_MODELS_H
#define DFN_MODELS_H

#include "diffusion/models.h"
#include "io/safetensors.h"

/* Adds one F32 tensor per model tensor, named prefix + dfn_model_tensor_name
 * (prefix may be "" or NULL), shaped as dfn_model_tensor_shape, with data taken
 * from base + dfn_model_tensor_offset: base is any array laid out like
 * dfn_model_params (the parameters, EMA weights, Adam moments). base must stay
 * valid until dfn_st_writer_save. */
dfn_status dfn_st_writer_add_model_tensors(dfn_st_writer *w, const dfn_model *model,
                                           const char *prefix, const float *base);
/* The reverse: for every model tensor, requires prefix + name in f with dtype
 * F32 and the model's shape, and copies it to base + offset. Messages name the
 * file and the tensor (see dfn_st_get). Tensors of f that the model lacks are
 * not checked here (dfn_model_load does that for whole checkpoints). */
dfn_status dfn_st_read_model_tensors(const dfn_st_file *f, const dfn_model *model,
                                     const char *prefix, float *base);

/* The metadata "latent_scale" of f (an autoencoder's, or a latent model's
 * record of it): *scale = the positive number, or 0 when absent;
 * DFN_ERR_FORMAT naming the file for anything else. */
dfn_status dfn_read_latent_scale(const dfn_st_file *f, double *scale);

/* dfn_model_load from a file already open (whose metadata the caller reads too). */
dfn_status dfn_model_load_from(dfn_model **out, const dfn_st_file *f);

/* Makes `params` (dfn_model_num_params floats, 64-byte aligned, e.g. from
 * dfn_malloc) the model's parameter array and returns the one it had, which the
 * caller now owns until it exchanges it back. O(1): the trainer runs its EMA
 * weights through the same network this way. */
float *dfn_model_exchange_params(dfn_model *model, float *params);

/* How many of the B rows of logits (B x K) name their label, the argmax (the
 * first on ties) against labels[b]: the accuracy count of the classifier's
 * evaluation and of its training loop's validation. */
long dfn_logits_count_correct(const float *logits, const int *labels, int B, int K);

/* The autoencoder's posterior q(z | x) of the last forward: mean and logvar
 * (batch, latent size; logvar clamped to [-30, 20]), views into its arena. */
void dfn_autoencoder_posterior(const dfn_model *ae, const float **mean, const float **logvar);
/* Backward of the last kept forward of an autoencoder: drec = d loss / d
 * reconstruction; dmean, dlogvar (batch, latent size, or NULL) are further
 * gradients on the posterior's mean and clamped logvar (the KL term's), added
 * to what flows back from the decoder; dx as dfn_model_backward's. */
void dfn_autoencoder_backward(dfn_model *ae, const float *drec, const float *dmean,
                              const float *dlogvar, float *dx);

#endif
