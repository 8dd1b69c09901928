/* cmd_eval.c - `diffusion eval METRIC`: likelihoods of a checkpoint on data,
 * and sample quality of a checkpoint's samples (or of a .npy of samples)
 * against a data set. Human-readable by default, one JSON object with --json. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "core/core.h"
#include "data_source.h"
#include "diffusion.h"
#include "tools.h"

#define MAX_ARGS 40

static const char *const metrics[] = {"bound", "nll", "fid", "kid", "mmd", "swd", "vectors", "recon",
                                      "straightness"};
enum { RECON = 7, STRAIGHTNESS = 8 };
#define N_METRICS ((int)(sizeof metrics / sizeof metrics[0]))

/* n samples: from --samples (.npy, or .csv of vectors) or drawn from the checkpoint with a sampler. */
static dfn_status get_samples(dfn_dataset **out, const char *file, dfn_pipeline *pipe, const char *sampler,
                              int steps, int n, int batch, uint64_t seed) {
    if (file) return dfn_ends_with(file, ".csv") ? dfn_dataset_load_csv(out, file, -1) : dfn_cli_load_npy(out, file);
    int dims[3], nd = dfn_pipeline_sample_shape(pipe, dims);
    float *x = malloc((size_t)n * dfn_pipeline_sample_size(pipe) * sizeof(float));
    if (!x) return dfn_set_error(DFN_ERR_ARG, "--n %d: no memory for that many samples", n);
    dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
    sp.sampler = sampler;
    sp.sampler_params.steps = steps;
    sp.batch = batch;
    sp.seed = seed;
    dfn_status st = dfn_pipeline_sample(pipe, x, n, &sp, NULL);
    if (!st) st = dfn_dataset_from_array(out, x, (size_t)n, nd, dims, NULL, 0);
    free(x);
    return st;
}

/* The first n images of ds (all if it holds fewer), degraded by `degrade`
 * (dfn_degrade_images) unless it is NULL: a new dataset. */
static dfn_status first_images(dfn_dataset **out, const dfn_dataset *ds, size_t n, const char *degrade,
                               uint64_t seed) {
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(ds, dims);
    n = DFN_MIN(n, dfn_dataset_count(ds));
    const size_t D = dfn_dataset_sample_size(ds);
    if (degrade && nd != 3) return dfn_set_error(DFN_ERR_ARG, "--degrade %s: the samples are not images", degrade);
    float *x = malloc(n * D * sizeof(float));
    if (!x) return dfn_set_error(DFN_ERR_ARG, "no memory for %zu images", n);
    memcpy(x, dfn_dataset_sample(ds, 0), n * D * sizeof(float));
    dfn_status st = degrade ? dfn_degrade_images(x, n, dims[0], dims[1], dims[2], degrade, seed) : DFN_OK;
    if (!st) st = dfn_dataset_from_array(out, x, n, nd, dims, NULL, 0);
    free(x);
    return st;
}

/* The held-out real images a FID is put beside (the train-vs-test floor):
 * Fashion-MNIST's other split, else none unless --floor names a set. */
static const char *default_floor(const char *data) {
    if (!strcmp(data, "fashion-mnist") || !strcmp(data, "fashion-mnist:train")) return "fashion-mnist:test";
    if (!strcmp(data, "fashion-mnist:test")) return "fashion-mnist:train";
    return NULL;
}

/* `eval recon`: the autoencoder's reconstructions of the first n images of ref
 * (the posterior means decoded): PSNR per image (peak-to-peak 2, images in
 * [-1, 1]), its mean and standard error; with a classifier, the FID of the
 * reconstructions against `reference` beside the FID of the images themselves
 * (the floor a latent model inherits, at the same N). Returns the exit status. */
static int eval_recon(const char *ae_path, const dfn_dataset *ref, const char *data,
                      const char *classifier, const char *reference, int n, int json, const char *cmd) {
    dfn_model *ae = NULL, *cls = NULL;
    dfn_dataset *recs = NULL, *origs = NULL, *against = NULL;
    float *rec = NULL, *z = NULL;
    int status = 1;
    if (dfn_model_load(&ae, ae_path) || dfn_model_check_kind(ae, DFN_MODEL_AUTOENCODER, ae_path)) goto fail;
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(ref, dims);
    if (dfn_model_check_input(ae, nd, dims, data)) goto fail;
    const size_t count = DFN_MIN(dfn_dataset_count(ref), (size_t)n), D = dfn_dataset_sample_size(ref);
    const size_t L = dfn_autoencoder_latent_size(ae);
    rec = malloc(count * D * sizeof(float));
    z = malloc(count * L * sizeof(float));
    if (!rec || !z) {
        dfn_set_error(DFN_ERR_ARG, "--n %d: no memory for that many reconstructions", n);
        goto fail;
    }
    const float *x = dfn_dataset_sample(ref, 0);
    double t0 = dfn_now_seconds();
    dfn_autoencoder_encode(ae, z, NULL, x, (int)count);
    dfn_autoencoder_decode(ae, rec, z, (int)count);
    const double seconds = dfn_now_seconds() - t0;
    for (size_t k = 0; k < count * D; k++) {
        if (!isfinite(rec[k])) {
            dfn_set_error(DFN_ERR_NUMERIC, "%s: reconstruction %zu holds %g", ae_path, k / D, (double)rec[k]);
            goto fail;
        }
        rec[k] = rec[k] < -1.0f ? -1.0f : rec[k] > 1.0f ? 1.0f : rec[k]; /* as sampling clamps */
    }
    double sum = 0, sumsq = 0, mse = 0;
    for (size_t i = 0; i < count; i++) {
        const double psnr = dfn_psnr(rec + i * D, x + i * D, D);
        sum += psnr;
        sumsq += psnr * psnr;
        mse += 4.0 * pow(10.0, -psnr / 10.0);
    }
    const double psnr = sum / count, psnr_se = count > 1 ? sqrt(DFN_MAX(sumsq / count - psnr * psnr, 0) / (count - 1)) : 0;
    double fid_rec = NAN, fid_data = NAN;
    if (classifier) {
        dfn_data_options dopt = {(size_t)n, 1, 0, 0, -1, 0};
        if (dfn_cli_load_data(&against, reference, &dopt)) goto fail;
        if (dfn_model_load(&cls, classifier)) goto fail;
        if (dfn_dataset_from_array(&recs, rec, count, nd, dims, NULL, 0)) goto fail;
        if (dfn_dataset_from_array(&origs, x, count, nd, dims, NULL, 0)) goto fail;
        if (dfn_fid(&fid_rec, cls, recs, against) || dfn_fid(&fid_data, cls, origs, against)) goto fail;
    }
    if (json)
        printf("{\"metric\":\"recon\",\"psnr\":%.6f,\"psnr_se\":%.6f,\"mse\":%.8g,\"fid\":%.17g,"
               "\"fid_data\":%.17g,\"images\":%zu,\"images_per_s\":%.1f}\n",
               psnr, psnr_se, mse / count, classifier ? fid_rec : -1, classifier ? fid_data : -1, count,
               count / seconds);
    else {
        printf("reconstruction: PSNR %.3f dB (+- %.3f), MSE %.3g on %zu images of %s  [%.0f images/s "
               "encoded and decoded]\n",
               psnr, psnr_se, mse / count, count, data, count / seconds);
        if (classifier)
            printf("FID of the reconstructions: %.4f, of the images themselves: %.4f  (%zu images vs %zu "
                   "of %s; the first is the floor a latent model of this autoencoder inherits)\n",
                   fid_rec, fid_data, count, dfn_dataset_count(against), reference);
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "diffusion %s: %s\n", cmd, dfn_last_error());
done:
    free(rec);
    free(z);
    dfn_model_free(ae);
    dfn_model_free(cls);
    dfn_dataset_free(recs);
    dfn_dataset_free(origs);
    dfn_dataset_free(against);
    return status;
}

int cmd_eval(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("usage: diffusion eval METRIC [options]   (diffusion eval METRIC --help)\n"
                   "  bound    variational bound of a checkpoint on --data, bits/dim\n"
                   "  nll      exact likelihood through the probability-flow ODE, bits/dim\n"
                   "  fid      Frechet distance in a --classifier's features, samples vs --data\n"
                   "  kid      kernel inception distance, same inputs as fid\n"
                   "  mmd      MMD^2 (RBF, median bandwidth) of vector samples vs --data\n"
                   "  swd      sliced Wasserstein distance of vector samples vs --data\n"
                   "  vectors  all vector metrics (mmd, swd, energy, mean and covariance errors)\n"
                   "  recon    an --autoencoder's reconstructions of --data: PSNR, and with a\n"
                   "           --classifier their FID against --reference beside the data's own\n"
                   "  straightness  of a rectified flow's paths (Liu et al. 2023 eq. 8), --steps Euler steps\n");
            return 0;
        }
        fprintf(stderr, "diffusion eval: name a metric: bound, nll, fid, kid, mmd, swd, vectors, recon, straightness\n");
        return 2;
    }
    const char *metric = argv[1];
    int which = -1;
    for (int i = 0; i < N_METRICS; i++)
        if (!strcmp(metric, metrics[i])) which = i;
    if (which < 0) {
        fprintf(stderr, "diffusion eval: unknown metric '%s' (bound, nll, fid, kid, mmd, swd, vectors, recon, straightness)\n", metric);
        return 2;
    }
    const char *ckpt = NULL, *data = NULL, *samples_npy = NULL, *classifier = NULL, *sampler = NULL;
    const char *ae_path = NULL, *reference = NULL, *real = NULL, *degrade = NULL, *floor_spec = NULL;
    const char *variance = "beta", *divergence = "rademacher", *precision = NULL;
    int n = 1000, batch = 100, steps = 50, threads = 0, json = 0, t_samples = 0, probes = 1, draws = 2;
    int dequantize = -1;
    uint64_t seed = 0;
    double rtol = 1e-5, atol = 1e-5;
    dfn_arg args[MAX_ARGS] = {
        {"--checkpoint", ARG_STRING, &ckpt, "FILE", "a model checkpoint", 0},
        {"--data", ARG_STRING, &data, "SPEC", "data: evaluation points (bound, nll) or the reference set", 0},
        {"--samples", ARG_STRING, &samples_npy, "FILE", "samples as .npy (or .csv of vectors) instead of sampling the checkpoint", 0},
        {"--classifier", ARG_STRING, &classifier, "FILE", "fid, kid (recon: optional): a checkpoint of diffusion train-classifier", 0},
        {"--real", ARG_STRING, &real, "SPEC", "fid, kid: the first --n images of this data instead of a model's samples", 0},
        {"--degrade", ARG_STRING, &degrade, "KIND", "fid, kid: degrade the samples first: noise:S, blur:S (pixels), pure-noise", 0},
        {"--floor", ARG_STRING, &floor_spec, "SPEC", "fid, kid: held-out real images scored beside the samples at the same N, or none (default: the other fashion-mnist split)", 0},
        {"--autoencoder", ARG_STRING, &ae_path, "FILE", "recon: the autoencoder; a latent model: its autoencoder instead of the one it names", 0},
        {"--reference", ARG_STRING, &reference, "SPEC", "recon with --classifier: the reference set of the FIDs (e.g. fashion-mnist:train)", 0},
        {"--n", ARG_INT, &n, "N", "points evaluated / samples drawn", 0},
        {"--batch", ARG_INT, &batch, "B", "rows per network call", 0},
        {"--sampler", ARG_STRING, &sampler, "NAME", "sampler for drawing samples (diffusion sample --list; default: the process's)", 0},
        {"--steps", ARG_INT, &steps, "N", "sampler steps", 0},
        {"--variance", ARG_STRING, &variance, "KIND", "bound: reverse variance beta or beta-tilde", 0},
        {"--t-samples", ARG_INT, &t_samples, "K", "bound: estimate from K sampled t (0: all T terms)", 0},
        {"--divergence", ARG_STRING, &divergence, "KIND", "nll: exact, rademacher, gaussian", 0},
        {"--probes", ARG_INT, &probes, "K", "nll: Hutchinson probes per integration", 0},
        {"--draws", ARG_INT, &draws, "K", "nll: integrations per point (>= 2 gives the estimator's error)", 0},
        {"--dequantize", ARG_INT, &dequantize, "0|1", "nll: uniform dequantisation of 8-bit data (-1: for images)", 0},
        {"--rtol", ARG_DOUBLE, &rtol, "R", "nll: RK45 relative tolerance", 0},
        {"--atol", ARG_DOUBLE, &atol, "A", "nll: RK45 absolute tolerance", 0},
        {"--seed", ARG_U64, &seed, "S", "random seed", 0},
        {"--threads", ARG_INT, &threads, "N", "threads (0: all cores)", 0},
        {"--precision", ARG_STRING, &precision, "KIND", "the convolutions' products: fp32, or bf16 (bfloat16 with float32 sums, CPUs with AVX512_BF16)", 0},
        {"--json", ARG_FLAG, &json, "", "print one JSON object instead of text", 0},
    };
    int n_args = 0;
    while (n_args < MAX_ARGS && args[n_args].name) n_args++;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "eval %s", metric);
    int rc = dfn_args_parse(cmd, args, n_args, argc - 1, argv + 1, "--data SPEC [--checkpoint FILE | --samples FILE] [options]");
    if (rc) return rc == 1 ? 0 : 2;
    if (n < 1 || batch < 1 || steps < 0 || threads < 0) {
        fprintf(stderr, "diffusion %s: --n and --batch must be >= 1, --steps and --threads >= 0\n", cmd);
        return 2;
    }
    if (!data && which != STRAIGHTNESS) {
        fprintf(stderr, "diffusion %s: --data SPEC is required\n", cmd);
        return 2;
    }
    if (which == STRAIGHTNESS && samples_npy) {
        fprintf(stderr, "diffusion %s: the paths are the model's own: give --checkpoint, not --samples\n", cmd);
        return 2;
    }
    if ((real || degrade || floor_spec) && which != 2 && which != 3) {
        fprintf(stderr, "diffusion %s: --real, --degrade and --floor go with fid and kid\n", cmd);
        return 2;
    }
    if (real && (samples_npy || ckpt)) {
        fprintf(stderr, "diffusion %s: --real takes the place of --checkpoint and --samples: give one\n", cmd);
        return 2;
    }
    if (!floor_spec && data) floor_spec = default_floor(data);
    if (floor_spec && !strcmp(floor_spec, "none")) floor_spec = NULL;
    int needs_model = which != RECON && (which <= 1 || which == STRAIGHTNESS || !(samples_npy || real));
    if (needs_model && !ckpt) {
        fprintf(stderr, "diffusion %s: --checkpoint FILE is required%s\n", cmd,
                which <= 1 || which == STRAIGHTNESS ? "" : which <= 3 ? " (or --samples FILE, or --real SPEC)" : " (or --samples FILE)");
        return 2;
    }
    if (which == RECON && !ae_path) {
        fprintf(stderr, "diffusion %s: --autoencoder FILE is required\n", cmd);
        return 2;
    }
    if (which == RECON && classifier && !reference) {
        fprintf(stderr, "diffusion %s: --classifier needs --reference SPEC (the set both FIDs are taken against)\n", cmd);
        return 2;
    }
    if ((which == 2 || which == 3) && !classifier) {
        fprintf(stderr, "diffusion %s: --classifier FILE is required (diffusion train-classifier makes one)\n", cmd);
        return 2;
    }
    if (threads > 0) dfn_set_threads(threads);
    if (precision && dfn_args_set_precision(cmd, precision)) return 2;

    dfn_pipeline *pipe = NULL;
    dfn_dataset *ref = NULL, *samples = NULL;
    dfn_model *cls = NULL;
    dfn_feature_ref *fref = NULL;
    dfn_dataset *held = NULL;
    int status = 1;
    dfn_data_options dopt = {(size_t)n, seed + 1, 0, 0, -1, 0};
    if (data && dfn_cli_load_data(&ref, data, &dopt)) goto fail;
    if (which == RECON) {
        status = eval_recon(ae_path, ref, data, classifier, reference, n, json, cmd);
        goto done;
    }
    if (needs_model && dfn_pipeline_load_with_autoencoder(&pipe, ckpt, ae_path)) goto fail;
    if (which <= 1 && pipe && dfn_pipeline_autoencoder(pipe)) {
        dfn_set_error(DFN_ERR_ARG,
                      "%s is a latent diffusion model: its %s would be of the autoencoder's latents "
                      "(bits per latent dimension), not comparable with a pixel model's bits/dim, "
                      "and the decoder's own likelihood is not modelled; not computed",
                      ckpt, which == 0 ? "variational bound" : "likelihood");
        goto fail;
    }
    if (which <= 1 && pipe && dfn_pipeline_consistency(pipe)) {
        dfn_set_error(DFN_ERR_ARG, "%s is a consistency model: it maps noise to data and has no "
                                   "denoiser whose %s could be computed", ckpt,
                      which == 0 ? "variational bound" : "likelihood");
        goto fail;
    }
    /* a consistency model samples in 1 step unless told */
    if (pipe && dfn_pipeline_consistency(pipe) && !dfn_args_find(args, n_args, "--steps")->seen) steps = 1;
    dfn_rng rng = dfn_rng_init(seed);
    dfn_denoiser den;
    if (pipe) dfn_pipeline_denoiser(pipe, &den, batch);
    if (which == STRAIGHTNESS) {
        if (dfn_pipeline_consistency(pipe) || dfn_pipeline_autoencoder(pipe)) {
            dfn_set_error(DFN_ERR_ARG, "%s is a %s model: straightness is of a rectified flow's own paths", ckpt,
                          dfn_pipeline_consistency(pipe) ? "consistency" : "latent diffusion");
            goto fail;
        }
        const size_t D = dfn_model_input_size(dfn_pipeline_model(pipe));
        float *x = malloc((size_t)n * D * sizeof(float));
        double S = 0;
        if (!x) {
            dfn_set_error(DFN_ERR_ARG, "--n %d: no memory for that many paths", n);
            goto fail;
        }
        const int st = dfn_flow_straightness(&den, x, n, D, steps, &rng, &S);
        free(x);
        if (st) {
            dfn_set_error(st, "%s: %s", ckpt, dfn_last_error());
            goto fail;
        }
        if (json)
            printf("{\"metric\":\"straightness\",\"value\":%.17g,\"paths\":%d,\"steps\":%d}\n", S, n, steps);
        else
            printf("straightness: %.6g  (mean squared deviation of the velocity from the path's chord, per "
                   "dimension; %d paths of %d Euler steps; 0: straight)\n", S, n, steps);
        status = 0;
        goto done;
    }
    const size_t model_dim = pipe ? dfn_pipeline_sample_size(pipe) : 0;
    const int image = pipe && dfn_pipeline_is_image(pipe);

    if (which <= 1) { /* likelihoods on the first n points of the data */
        size_t count = dfn_dataset_count(ref) < (size_t)n ? dfn_dataset_count(ref) : (size_t)n;
        if (dfn_dataset_sample_size(ref) != model_dim) {
            dfn_set_error(DFN_ERR_ARG, "--data %s: samples of %zu values, the model's are %zu", data,
                          dfn_dataset_sample_size(ref), model_dim);
            goto fail;
        }
        const float *x = dfn_dataset_sample(ref, 0);
        if (which == 0) {
            dfn_bound_params bp = dfn_bound_params_init();
            int k = dfn_ddpm_variance_from_name(variance);
            if (k < 0) goto fail;
            bp.variance = (dfn_ddpm_variance)k;
            bp.decoder = image ? DFN_DECODER_8BIT : DFN_DECODER_GAUSSIAN;
            bp.t_samples = t_samples;
            bp.clip_x0 = image;
            dfn_bound_result r;
            if (dfn_variational_bound(&den, x, (int)count, model_dim, &bp, &rng, NULL, &r)) goto fail;
            if (json)
                printf("{\"metric\":\"bound\",\"bpd\":%.6f,\"bpd_se\":%.6f,\"prior_bpd\":%.6f,\"kl_bpd\":%.6f,"
                       "\"decoder_bpd\":%.6f,\"points\":%zu,\"nfe\":%ld,\"variance\":\"%s\",\"decoder\":\"%s\"}\n",
                       r.bpd, r.bpd_se, r.prior_bpd, r.kl_bpd, r.decoder_bpd, count, r.nfe, variance,
                       dfn_decoder_name(bp.decoder));
            else
                printf("variational bound: %.4f bits/dim (+- %.4f) on %zu points of %s  [L_T %.4f, sum L_t %.4f, "
                       "L_0 %.4f; %s decoder, %s variance, %ld network evaluations]\n",
                       r.bpd, r.bpd_se, count, data, r.prior_bpd, r.kl_bpd, r.decoder_bpd,
                       dfn_decoder_name(bp.decoder), variance, r.nfe);
        } else {
            dfn_nll_params np = dfn_nll_params_init();
            int k = dfn_divergence_from_name(divergence);
            if (k < 0) goto fail;
            np.divergence = (dfn_divergence)k;
            np.probes = probes;
            np.draws = draws;
            np.rtol = rtol;
            np.atol = atol;
            np.dequantize = dequantize < 0 ? image : dequantize;
            dfn_nll_result r;
            if (dfn_ode_nll(&den, x, (int)count, model_dim, &np, &rng, NULL, NULL, &r)) goto fail;
            if (json)
                printf("{\"metric\":\"nll\",\"bpd\":%.6f,\"bpd_se\":%.6f,\"estimator_se\":%.6f,\"nats\":%.6f,"
                       "\"points\":%zu,\"nfe\":%ld,\"divergence\":\"%s\",\"probes\":%d,\"draws\":%d}\n",
                       r.bpd, r.bpd_se, r.estimator_se, r.nll, count, r.nfe, divergence, probes, draws);
            else
                printf("ODE likelihood: %.4f bits/dim (+- %.4f over points, +- %.4f from the estimator) on %zu "
                       "points of %s  [%s divergence, %d probes x %d draws, %ld evaluations]\n",
                       r.bpd, r.bpd_se, r.estimator_se, count, data, divergence, probes, draws, r.nfe);
        }
    } else {
        if (real) {
            dfn_dataset *all = NULL;
            if (dfn_cli_load_data(&all, real, &dopt)) goto fail;
            dfn_status st = first_images(&samples, all, (size_t)n, NULL, 0);
            dfn_dataset_free(all);
            if (st) goto fail;
        } else if (get_samples(&samples, samples_npy, pipe, sampler, steps, n, batch, seed)) goto fail;
        if (degrade) {
            dfn_dataset *clean = samples;
            samples = NULL;
            dfn_status st = first_images(&samples, clean, dfn_dataset_count(clean), degrade, seed);
            dfn_dataset_free(clean);
            if (st) goto fail;
        }
        if (which <= 3) {
            if (dfn_model_load(&cls, classifier)) goto fail;
            if (dfn_feature_ref_new(&fref, cls, ref)) goto fail;
            /* the floor: as many held-out real images as there are samples */
            if (floor_spec) {
                dfn_dataset *all = NULL;
                if (dfn_cli_load_data(&all, floor_spec, &dopt)) goto fail;
                dfn_status st = first_images(&held, all, dfn_dataset_count(samples), NULL, 0);
                dfn_dataset_free(all);
                if (st) goto fail;
            }
            double v, sd = 0, fv = NAN, fsd = 0;
            if (which == 2 ? dfn_feature_ref_fid(fref, samples, &v)
                           : dfn_feature_ref_kid(fref, samples, NULL, &v, &sd))
                goto fail;
            if (held && (which == 2 ? dfn_feature_ref_fid(fref, held, &fv)
                                    : dfn_feature_ref_kid(fref, held, NULL, &fv, &fsd))) {
                dfn_set_error(DFN_ERR_ARG, "--floor %s: %s", floor_spec, dfn_last_error());
                goto fail;
            }
            const char *source = real ? real : samples_npy ? samples_npy : sampler ? sampler : dfn_pipeline_default_sampler(pipe);
            if (json) {
                printf("{\"metric\":\"%s\",\"value\":%.17g,\"std\":%.17g,\"samples\":%zu,\"reference\":%zu", metric, v,
                       sd, dfn_dataset_count(samples), dfn_dataset_count(ref));
                if (degrade) printf(",\"degrade\":\"%s\"", degrade);
                if (held)
                    printf(",\"floor\":%.17g,\"floor_std\":%.17g,\"floor_images\":%zu,\"floor_data\":\"%s\"", fv,
                           fsd, dfn_dataset_count(held), floor_spec);
                printf("}\n");
            } else {
                char value[64];
                if (which == 2) snprintf(value, sizeof value, "FID: %.4f", v);
                else snprintf(value, sizeof value, "KID: %.5f +- %.5f", v, sd);
                printf("%s  (%zu %s%s%s%s%s vs %zu of %s)\n", value, dfn_dataset_count(samples),
                       real ? "images of " : "samples", real ? "" : samples_npy ? " from " : " drawn with ", source,
                       degrade ? ", degraded by " : "", degrade ? degrade : "", dfn_dataset_count(ref), data);
                if (held) {
                    if (which == 2) snprintf(value, sizeof value, "floor: %.4f", fv);
                    else snprintf(value, sizeof value, "floor: %.5f +- %.5f", fv, fsd);
                    printf("%s  (%zu held-out images of %s vs the same%s)", value, dfn_dataset_count(held), floor_spec,
                           dfn_dataset_count(held) < dfn_dataset_count(samples) ? "; fewer than the samples" : "");
                    if (which == 2 && fv > 0) printf("; FID / floor = %.1f", v / fv);
                    printf("\n");
                } else
                    printf("floor: none (--floor SPEC scores held-out real images at the same N)\n");
            }
        } else {
            size_t ns = dfn_dataset_count(samples), nr = dfn_dataset_count(ref);
            int ds = (int)dfn_dataset_sample_size(samples), dr = (int)dfn_dataset_sample_size(ref);
            dfn_vector_metrics vm;
            if (dfn_vector_metrics_compute(&vm, dfn_dataset_sample(samples, 0), ns, ds, dfn_dataset_sample(ref, 0),
                                           nr, dr, seed))
                goto fail;
            if (json)
                printf("{\"metric\":\"%s\",\"mmd2\":%.6g,\"mmd_bandwidth\":%.6g,\"sliced_w2\":%.6g,\"energy\":%.6g,"
                       "\"mean_error\":%.6g,\"cov_error\":%.6g,\"samples\":%zu,\"reference\":%zu}\n",
                       metric, vm.mmd2, vm.mmd_bandwidth, vm.sliced_w2, vm.energy, vm.mean_error, vm.cov_error, ns, nr);
            else if (which == 4)
                printf("MMD^2: %.6g (RBF bandwidth %.4g; %zu samples vs %zu)\n", vm.mmd2, vm.mmd_bandwidth, ns, nr);
            else if (which == 5)
                printf("sliced Wasserstein (W2, 128 projections): %.6g (%zu samples vs %zu)\n", vm.sliced_w2, ns, nr);
            else
                printf("MMD^2 %.6g (bandwidth %.4g), sliced W2 %.6g, energy distance %.6g, mean error %.6g, "
                       "covariance error %.6g  (%zu samples vs %zu)\n",
                       vm.mmd2, vm.mmd_bandwidth, vm.sliced_w2, vm.energy, vm.mean_error, vm.cov_error, ns, nr);
        }
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "diffusion %s: %s\n", cmd, dfn_last_error());
done:
    dfn_feature_ref_free(fref);
    dfn_dataset_free(held);
    dfn_model_free(cls);
    dfn_dataset_free(samples);
    dfn_dataset_free(ref);
    dfn_pipeline_free(pipe);
    return status;
}
