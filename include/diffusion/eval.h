/* diffusion/eval.h - how good a model is: likelihoods (the variational bound
 * and the exact ODE likelihood, in bits/dim), sample quality for vectors (MMD,
 * sliced Wasserstein, energy distance) and for images (FID and KID in the
 * features of a classifier trained by the library). */
#ifndef DIFFUSION_EVAL_H
#define DIFFUSION_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"
#include "diffusion/data.h"
#include "diffusion/models.h"
#include "diffusion/process.h"
#include "diffusion/sample.h"

DFN_BEGIN_DECLS

/* ---------------------------------------------------------------- FID and KID
 *   src/eval/fid.c       feature statistics, Frechet distance, FID
 *   src/eval/kid.c       kernel inception distance
 *   src/eval/accuracy.c  a classifier's accuracy
 *
 * FID and KID compare two sets of images in the feature space of a network.
 * The papers use Inception-v3 on ImageNet; diffusion.c instead trains its own
 * small classifier (a dfn_model of kind DFN_MODEL_CLASSIFIER, `diffusion
 * train-classifier`) on the labelled training data and uses its penultimate
 * layer: numbers are comparable between runs that use the same classifier
 * checkpoint, not with published Inception FIDs. Every function taking a
 * classifier below refuses (DFN_ERR_ARG) a model of another kind, and images
 * of another shape than it was built for. */

/* Fraction of ds classified correctly (argmax of the logits, first on ties);
 * ds must be labelled. */
dfn_status dfn_classifier_accuracy(dfn_model *classifier, const dfn_dataset *ds, double *accuracy);
/* The same for a classifier of noisy images (time_embed): every image noised to
 * one level, x = alpha x0 + sigma eps (eps from `seed`), network time t_net. */
dfn_status dfn_classifier_accuracy_noisy(dfn_model *classifier, const dfn_dataset *ds, double t_net,
                                         double alpha, double sigma, uint64_t seed,
                                         double *accuracy);

/* -- Frechet distance (Heusel et al. 2017, eq. 6; Dowson & Landau 1982) */

/* Mean (d) and unbiased covariance (d, d; divisor n - 1) of n feature vectors
 * (n, d), in double. DFN_ERR_ARG for n < 2, DFN_ERR_NUMERIC for a non-finite
 * value. */
dfn_status dfn_feature_stats(double *mean, double *cov, const float *features, size_t n, int d);
/* d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), the trace of the root as
 * tr((S1^(1/2) S2 S1^(1/2))^(1/2)) (the same eigenvalues), both roots by
 * LAPACK's symmetric eigensolver with negative round-off eigenvalues clamped
 * to 0. Covariances must be symmetric positive semi-definite.
 * DFN_ERR_NUMERIC for non-finite input or a failed eigensolver. */
dfn_status dfn_frechet_distance(double *out, const double *mu1, const double *cov1,
                                const double *mu2, const double *cov2, int d);
/* The Frechet distance of two feature sets (n1, d) and (n2, d). DFN_ERR_ARG
 * unless each set has at least d + 1 vectors (a full-rank covariance is
 * possible), DFN_ERR_NUMERIC for a non-finite value. */
dfn_status dfn_fid_features(double *out, const float *f1, size_t n1, const float *f2, size_t n2,
                            int d);
/* FID of the images `samples` against `reference` in the classifier's feature space.
 * Errors (DFN_ERR_ARG unless noted): sets of different shapes, images the
 * classifier was not trained for, fewer than F + 1 images in a set, a NaN or
 * Inf pixel (DFN_ERR_NUMERIC, naming the set, the image and the element). */
dfn_status dfn_fid(double *out, dfn_model *classifier, const dfn_dataset *samples,
                   const dfn_dataset *reference);

/* -- kernel inception distance (Binkowski et al. 2018, section 3 / appendix) */

typedef struct {
    int subset_size; /* m vectors drawn (without replacement) from each set per
                        subset, at most the smaller set's size: 1000 */
    int subsets;     /* subsets averaged: 100 */
    uint64_t seed;   /* the draws: 0 */
} dfn_kid_params;

dfn_kid_params dfn_kid_params_init(void);
/* Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with the cubic polynomial kernel
 * k(x, y) = (x.y / d + 1)^3, on `subsets` pairs of random subsets of size
 * m = min(subset_size, n1, n2); *mean and *std (population, ddof 0, as
 * torch-fidelity) over the subsets. std may be NULL. DFN_ERR_ARG for m < 2 or
 * bad params, DFN_ERR_NUMERIC for a non-finite value. */
dfn_status dfn_kid_features(double *mean, double *std, const float *f1, size_t n1,
                            const float *f2, size_t n2, int d, const dfn_kid_params *p);
/* KID of images, errors as dfn_fid (except the count: each set needs 2). p NULL:
 * defaults. */
dfn_status dfn_kid(double *mean, double *std, dfn_model *classifier, const dfn_dataset *samples,
                   const dfn_dataset *reference, const dfn_kid_params *p);

/* -- known degradations (src/eval/degrade.c), which a metric must order
 * correctly: spec "noise:S" (x + S z, clamped to [-1, 1]), "blur:S" (Gaussian,
 * S pixels), "pure-noise" (U(-1, 1)), applied in place to n images (C, H, W) in
 * [-1, 1], the same bits for the same seed. DFN_ERR_ARG for another spec. */
dfn_status dfn_degrade_images(float *x, size_t n, int C, int H, int W, const char *spec,
                              uint64_t seed);

/* -- one reference set, many comparisons
 *
 * A reference set's features, extracted once: FID and KID of many sample sets
 * against it (a model's samples and the held-out floor at the same N, a ladder
 * of degradations, the FID of a training run every K steps) without running the
 * classifier over the reference each time; the values are the same bits as
 * dfn_fid's and dfn_kid's. classifier and reference are borrowed: they must
 * outlive the object. Errors as dfn_fid (the reference needs F + 1 images).
 *
 *     dfn_feature_ref *r;
 *     dfn_feature_ref_new(&r, classifier, train_images);
 *     dfn_feature_ref_fid(r, samples, &fid);
 *     dfn_feature_ref_fid(r, test_images_first_n, &floor);   // same N
 *     dfn_feature_ref_free(r);
 */
typedef struct dfn_feature_ref dfn_feature_ref;

dfn_status dfn_feature_ref_new(dfn_feature_ref **out, dfn_model *classifier,
                               const dfn_dataset *reference);
void dfn_feature_ref_free(dfn_feature_ref *r);
/* Images in the reference set. */
size_t dfn_feature_ref_count(const dfn_feature_ref *r);
dfn_status dfn_feature_ref_fid(const dfn_feature_ref *r, const dfn_dataset *samples, double *out);
/* p NULL: defaults; std may be NULL. */
dfn_status dfn_feature_ref_kid(const dfn_feature_ref *r, const dfn_dataset *samples,
                               const dfn_kid_params *p, double *mean, double *std);


/* ================================================================

* Likelihood and metrics
 *   src/eval/bound.c           the variational bound (Ho et al. 2020 eq. 5)
 *   src/eval/ode_likelihood.c  the exact likelihood through the probability-flow
 *                              ODE (Song et al. 2021 appendix D.2)
 *   src/eval/metrics.c         sample quality for vectors: MMD, sliced Wasserstein,
 *                              energy distance, mean and covariance errors
 *
 * Units. nats per sample, and bits/dim = nats / (dim ln 2). For continuous
 * vectors these are differential (they can be negative). For 8-bit data
 * scaled to [-1, 1] (x = k / 127.5 - 1) both estimators bound the discrete
 * -log P(k): the bound through its discretised decoder, the ODE through
 * uniform dequantisation (below), so the two are comparable with each other
 * and with the papers' bits/dim.
 */

/* ---------------------------------------------------------------- the variational bound */

/* The decoder -log p(x0 | x1) of the bound's last term. */
typedef enum {
    DFN_DECODER_GAUSSIAN, /* "gaussian": N(x0; mu, var) density, continuous vectors */
    DFN_DECODER_8BIT,     /* "8bit": discretised Gaussian on 256 bins of width 2/255
                             centred at k/127.5 - 1, the edge bins open to -inf and
                             +inf (Ho et al. 2020 eq. 13) */
    DFN_DECODER_COUNT
} dfn_decoder;
const char *dfn_decoder_name(dfn_decoder dec);
int dfn_decoder_from_name(const char *name); /* -1 + message */

typedef struct {
    dfn_ddpm_variance variance; /* the reverse variance: b~_t or b_t [beta-tilde] */
    dfn_decoder decoder;        /* [gaussian] */
    int t_samples;              /* 0: all T terms; K >= 2: L_T and L_0 exactly and
                                   K steps of t = 2..T drawn (one per draw for the
                                   whole batch) from 1/2 uniform + 1/2 prop. to
                                   1/(t-1), the KL sum estimated by importance
                                   weights (K + 1 evaluations) [0] */
    int clip_x0;                /* clip the x0 estimate to [-1, 1] (images) [0] */
} dfn_bound_params;

dfn_bound_params dfn_bound_params_init(void);

typedef struct {
    double bpd;         /* the bound, bits/dim, mean over the batch */
    double bpd_se;      /* standard error of bpd over the t draws (0: all terms) */
    double prior_bpd;   /* the batch means of the parts: L_T, */
    double kl_bpd;      /* sum_{t=2..T} L_{t-1} (estimated when sampled), */
    double decoder_bpd; /* L_0 */
    long nfe;           /* denoiser evaluations */
} dfn_bound_result;

/* The variational bound -log p(x0) <= L = L_T + sum_{t=2..T} L_{t-1} + L_0
 * (Ho et al. 2020 eq. 5; Sohl-Dickstein et al. 2015) of a denoiser on a
 * discrete schedule, for x0 (batch, dim):
 *   L_T     = KL(q(x_T | x0) || N(0, I))
 *   L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)), x_t ~ q(x_t | x0)
 *             (one draw from rng per term), p's mean the posterior mean
 *             (DDPM eq. 7) at the denoiser's x0 estimate, its variance fixed
 *   L_0     = -log p(x0 | x1), x1 ~ q(x1 | x0), mean the x0 estimate at step 1,
 *             variance exp(posterior_log_variance_clipped[0]) = b~_2
 *             (beta-tilde, as improved-diffusion) or b_1 (beta).
 * With a fixed variance the bound is tight only if it matches the true
 * reverse variance: for continuous data and an exact denoiser b_t is nearly
 * tight, while b~_t, too small at the first steps, adds about
 * dim sum_t 1/(4 t^2) nats (measured: 0.56 nats/dim on a 2-D mixture, T = 1000).
 * bpd (batch, or NULL) receives each sample's bound in bits/dim; res (or NULL)
 * the summary. Errors: DFN_ERR_ARG for a continuous process (use dfn_ode_nll),
 * a t_samples of 1 or < 0, values outside [-1, 1] with the 8-bit decoder;
 * DFN_ERR_NUMERIC for non-finite data or a non-finite bound. */
dfn_status dfn_variational_bound(dfn_denoiser *d, const float *x0, int batch, size_t dim,
                                 const dfn_bound_params *p, dfn_rng *rng, double *bpd,
                                 dfn_bound_result *res);

/* ---------------------------------------------------------------- exact likelihood */

/* How the ODE's divergence tr(d drift / d x) is computed. */
typedef enum {
    DFN_DIVERGENCE_EXACT,      /* "exact": dim VJPs with the basis vectors (small dim) */
    DFN_DIVERGENCE_RADEMACHER, /* "rademacher": Hutchinson (1989), probes of +-1 */
    DFN_DIVERGENCE_GAUSSIAN,   /* "gaussian": Hutchinson with N(0, I) probes */
    DFN_DIVERGENCE_COUNT
} dfn_divergence;
const char *dfn_divergence_name(dfn_divergence div);
int dfn_divergence_from_name(const char *name); /* -1 + message */

typedef struct {
    dfn_divergence divergence; /* [rademacher] */
    int probes;        /* Hutchinson probes per point, averaged, fixed for one
                          integration (Grathwohl et al. 2019) [1] */
    int draws;         /* independent integrations per point (new probes, new
                          dequantisation): >= 2 gives per-point standard errors [1] */
    double rtol, atol; /* RK45 tolerances [1e-5, 1e-5] (score_sde's) */
    int max_steps;     /* accepted + rejected steps per integration [10000] */
    double t_eps;      /* where the ODE starts: the data are taken as x(t_eps)
                          [0: 1e-5 for VP, sub-VP and VE (score_sde), 1e-3 for flow,
                          step 0 (the papers' t = 1) for a schedule] */
    int dequantize;    /* 8-bit data in [-1, 1]: x + (u - 1/2) 2/255, u ~ U(0, 1),
                          and add dim log 127.5 nats (the bins' volume) [0] */
} dfn_nll_params;

dfn_nll_params dfn_nll_params_init(void);

typedef struct {
    double nll;          /* mean over the batch of -log p, nats per sample */
    double bpd;          /* the same in bits/dim */
    double bpd_se;       /* standard error of bpd as an estimate of the data's
                            expected NLL: spread over points (and draws) / sqrt */
    double estimator_se; /* standard error of bpd from the estimator alone (probes
                            and dequantisation, for these points): from the spread
                            over draws; 0 for exact without dequantisation; NaN
                            for a random estimator with draws = 1 */
    long nfe;            /* VJP evaluations */
    int steps, rejected; /* RK45 steps of all integrations */
} dfn_nll_result;

/* The exact likelihood of x (batch, dim) under the probability-flow ODE (Song
 * et al. 2021 eq. 13 and appendix D.2, the instantaneous change of variables of
 * Chen et al. 2018):
 *   dx/dt = v(x, t) = f(t) x - 1/2 g(t)^2 grad log p_t(x),
 *   log p_t_eps(x(t_eps)) = log p_1(x(1)) + int_{t_eps}^1 div v(x(t), t) dt,
 * integrated from t_eps to 1 by Dormand-Prince 5(4) (one system for the batch);
 * p_1 = N(0, prior_std^2 I). The drift comes from d's prediction: VP, sub-VP,
 * VE through dfn_sde_coefficients; flow as the velocity itself; a discrete
 * schedule as a continuous VP process with log SNR linear between the steps
 * (dfn_denoiser_marginal), integrated in tau = -log SNR, where
 * dx/dtau = -sigma^2/2 x + sigma/2 eps is smooth, from step t_eps to step T-1.
 * Needs d->vjp. nll (batch, or NULL): -log p per point in nats (mean over
 * draws); nll_se (batch, or NULL): its standard error over draws (0 with one
 * draw). Errors: DFN_ERR_ARG for bad options or no vjp; DFN_ERR_NUMERIC for
 * non-finite data, a non-finite result or max_steps exceeded. */
dfn_status dfn_ode_nll(dfn_denoiser *d, const float *x, int batch, size_t dim,
                       const dfn_nll_params *p, dfn_rng *rng, double *nll, double *nll_se,
                       dfn_nll_result *res);

/* ---------------------------------------------------------------- sample quality (vectors) */

/* Two sets of vectors, x (n, dim_x) and y (m, dim_y), e.g. generated samples
 * and a reference set. Errors of every function below: DFN_ERR_ARG when
 * dim_x != dim_y, a dimension < 1, or fewer than 2 vectors in a set (the
 * unbiased estimators and covariances need 2; a full-rank covariance needs
 * dim + 1); DFN_ERR_NUMERIC for a NaN or Inf (the message names the set, the
 * row and the column). Sums are in double, in an order that depends on the
 * sizes only (any thread count gives the same bits). */

/* Unbiased MMD^2 (Gretton et al. 2012 eq. 3) with the Gaussian kernel
 * k(a, b) = exp(-|a - b|^2 / (2 h^2)). bandwidth h > 0 as given, or <= 0 for
 * the median heuristic: h = the median distance between distinct pairs of the
 * pooled set (its first 1000 vectors of each set at most). *used_bandwidth (or
 * NULL) receives h. Can be slightly negative for equal distributions. */
dfn_status dfn_mmd2(double *out, const float *x, size_t n, int dim_x, const float *y, size_t m,
                    int dim_y, double bandwidth, double *used_bandwidth);
/* Sliced 2-Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015):
 * sqrt(mean over `projections` directions theta, uniform on the sphere from
 * `seed`, of W_2^2 between the 1-D projections), each W_2^2 exact between the
 * two empirical distributions (sizes may differ). projections >= 1. */
dfn_status dfn_sliced_wasserstein(double *out, const float *x, size_t n, int dim_x,
                                  const float *y, size_t m, int dim_y, int projections,
                                  uint64_t seed);
/* Energy distance (Szekely & Rizzo 2013 eq. 2) 2 E|X - Y| - E|X - X'| - E|Y - Y'|,
 * the within-set means over distinct pairs (U-statistics). */
dfn_status dfn_energy_distance(double *out, const float *x, size_t n, int dim_x, const float *y,
                               size_t m, int dim_y);
/* |mean(x) - mean(y)|_2 and |Cov(x) - Cov(y)|_F (covariances with n - 1);
 * either output may be NULL. */
dfn_status dfn_moment_errors(double *mean_error, double *cov_error, const float *x, size_t n,
                             int dim_x, const float *y, size_t m, int dim_y);

/* ---------------------------------------------------------------- the covariance view
 *   src/eval/spectrum.c
 *
 * Seed 000 looks at a data set through the covariance of its dimensions: a
 * signal with structure has a few large eigenvalues (it is low-rank), white
 * noise of the same shape a flat spectrum; and white noise mapped to the
 * data's covariance is a Gaussian generator, the baseline a diffusion model
 * must beat (`diffusion analyze`):
 *
 *     dfn_feature_stats(mean, cov, x, n, d);               // (d), (d, d)
 *     dfn_covariance_eigen(lambda, U, cov, d);             // descending
 *     dfn_colored_noise(fake, m, d, mean, lambda, U, &rng); // (m, d)
 */

/* Eigenvalues (d, descending) and, unless eigenvectors is NULL, eigenvectors
 * (d, d, row-major, column k for eigenvalue k) of the symmetric cov (d, d), by
 * LAPACK's dsyevd. Round-off can leave eigenvalues of a singular covariance
 * slightly below zero; they are returned as computed. DFN_ERR_NUMERIC for a
 * non-finite entry or a failed eigensolver. */
dfn_status dfn_covariance_eigen(double *eigenvalues, double *eigenvectors, const double *cov,
                                int d);
/* Seed 000's similarity matrix of the d dimensions of n vectors x (n, d):
 * S_ij = mean over the vectors of 2 / (1 + exp|x_i - x_j|), the logistic
 * function of minus the distance, so S_ii = 1 and S_ij -> 0 for dimensions far
 * apart. out (d, d). DFN_ERR_ARG for n = 0, DFN_ERR_NUMERIC for NaN or Inf. */
dfn_status dfn_similarity_matrix(double *out, const float *x, size_t n, int d);
/* n vectors (n, d) of "colored noise" with the given mean and the covariance
 * U diag(eigenvalues) U^T: x = mean + U S^(1/2) z, z ~ N(0, I) drawn from rng
 * (negative eigenvalues taken as 0). Same rng state, same bits. */
void dfn_colored_noise(float *out, size_t n, int d, const double *mean, const double *eigenvalues,
                       const double *eigenvectors, dfn_rng *rng);

typedef struct {
    double mmd2, mmd_bandwidth;
    double sliced_w2;
    double energy;
    double mean_error, cov_error;
} dfn_vector_metrics;

/* All of the above: median-heuristic MMD, 128 projections from `seed`. */
dfn_status dfn_vector_metrics_compute(dfn_vector_metrics *out, const float *x, size_t n,
                                      int dim_x, const float *y, size_t m, int dim_y,
                                      uint64_t seed);

DFN_END_DECLS

#endif
