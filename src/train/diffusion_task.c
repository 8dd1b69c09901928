/* diffusion_task.c - what a batch of a denoiser's training computes (Ho et al.
 * 2020 alg. 1, with the practice of improved-diffusion and diffusers): draw t
 * and noise, build x_t and the objective's target, run the network, the
 * weighted loss, and its backward. Checkpoints and previews go through a
 * pipeline over the model, so that model.safetensors is what
 * dfn_pipeline_load reads.
 *
 * Randomness: per micro-batch and in this order the times, the noise (unless
 * the data bring it: reflow's (data, noise) pairs), the label drops
 * (classifier-free guidance) and the dropout masks, all from the stream the
 * loop passes in. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/files.h"
#include "diffusion/io.h"
#include "diffusion/pipeline.h"
#include "diffusion/plot.h"
#include "train/train.h"

typedef struct {
    const dfn_train_params *p;
    dfn_pipeline *pipe; /* over the trained model: its process and prediction */
    char *objective_json;
    int B;
    size_t D;
    float *eps, *xt, *target, *weight, *pred, *dpred, *tnet, *tcont, *cout, *pairs;
    int *tidx, *y;
} diffusion_state;

static dfn_status check(const dfn_model *m, const dfn_dataset *ds, const dfn_train_params *p,
                        const char *what) {
    (void)p;
    const int K = dfn_model_get_config(m)->num_classes;
    if (K > 0 && dfn_dataset_num_classes(ds) > K)
        return dfn_set_error(DFN_ERR_ARG, "%s: %d classes, the model has %d", what,
                             dfn_dataset_num_classes(ds), K);
    return DFN_OK;
}

static void end(void *state) {
    diffusion_state *s = state;
    if (!s) return;
    dfn_pipeline_free(s->pipe);
    free(s->objective_json);
    free(s->eps), free(s->xt), free(s->target), free(s->weight), free(s->pred), free(s->dpred);
    free(s->tnet), free(s->tcont), free(s->cout), free(s->tidx), free(s->y), free(s->pairs);
    free(s);
}

static dfn_status begin(void **state, dfn_model *m, const dfn_train_params *p, int B) {
    *state = NULL;
    dfn_status st = dfn_objective_validate(&p->objective, !p->process.continuous);
    if (st != DFN_OK) return st;
    diffusion_state *s = dfn_calloc(1, sizeof *s);
    if ((st = dfn_pipeline_new(&s->pipe, m, &p->process, p->objective.prediction)) != DFN_OK) {
        free(s);
        return st;
    }
    /* latent diffusion: checkpoints name the run's copy of the autoencoder
     * (written beside them), previews decode */
    const int files = p->run_dir && *p->run_dir;
    if (p->autoencoder &&
        (st = dfn_pipeline_set_autoencoder(s->pipe, p->autoencoder,
                                           files ? "autoencoder.safetensors" : NULL)) != DFN_OK) {
        dfn_pipeline_free(s->pipe);
        free(s);
        return st;
    }
    s->p = p;
    s->objective_json = dfn_objective_to_json(&p->objective);
    s->B = B;
    s->D = dfn_model_input_size(m);
    const size_t BD = (size_t)B * s->D;
    s->eps = dfn_malloc(BD * sizeof(float));
    if (p->paired_noise) s->pairs = dfn_malloc(BD * sizeof(float));
    s->xt = dfn_malloc(BD * sizeof(float));
    s->target = dfn_malloc(BD * sizeof(float));
    s->pred = dfn_malloc(BD * sizeof(float));
    s->dpred = dfn_malloc(BD * sizeof(float));
    s->weight = dfn_malloc((size_t)B * sizeof(float));
    s->tnet = dfn_malloc((size_t)B * sizeof(float));
    s->tcont = dfn_malloc((size_t)B * sizeof(float));
    s->cout = dfn_malloc((size_t)B * sizeof(float));
    s->tidx = dfn_malloc((size_t)B * sizeof(int));
    s->y = dfn_malloc((size_t)B * sizeof(int));
    *state = s;
    return DFN_OK;
}

/* One micro-batch: draws t, noise and label drops, builds x_t and the target,
 * runs the network (training: dropout from the same stream) and returns the
 * loss; training also runs the backward of grad_scale * loss. */
static double batch(void *state, dfn_model *m, const float *x0s, const int *labels, int B,
                    int train, dfn_rng *rng, float grad_scale, double *metric) {
    (void)metric;
    diffusion_state *s = state;
    const dfn_train_params *p = s->p;
    const dfn_process_params *proc = &p->process;
    const size_t D = s->D;
    DFN_ASSERT(B <= s->B);
    if (p->paired_noise) { /* rows (data, noise): reflow's pairs */
        for (int b = 0; b < B; b++) {
            memcpy(s->pairs + (size_t)b * D, x0s + (size_t)b * 2 * D, D * sizeof(float));
            memcpy(s->eps + (size_t)b * D, x0s + ((size_t)b * 2 + 1) * D, D * sizeof(float));
        }
    }
    const float *x0 = p->paired_noise ? s->pairs : x0s;
    if (!proc->continuous) {
        dfn_sample_timesteps(s->tidx, B, dfn_pipeline_schedule(s->pipe)->T, rng);
        for (int b = 0; b < B; b++) s->tnet[b] = (float)s->tidx[b];
    } else {
        dfn_sample_times(s->tcont, B, proc->t_min, 1.0, rng);
        if (p->fixed_time > 0)
            for (int b = 0; b < B; b++) s->tcont[b] = (float)p->fixed_time;
        for (int b = 0; b < B; b++) s->tnet[b] = (float)(proc->time_scale * s->tcont[b]);
    }
    if (!p->paired_noise) dfn_rng_normal(rng, s->eps, (size_t)B * D);
    const int K = dfn_model_get_config(m)->num_classes;
    const int *y = dfn_train_labels(s->y, labels, B, K, train ? p->p_uncond : 0, s->weight, rng);
    if (!proc->continuous)
        dfn_objective_batch_discrete(s->xt, s->target, s->weight, &p->objective,
                                     dfn_pipeline_schedule(s->pipe), x0, s->eps, s->tidx, B, D);
    else
        dfn_objective_batch_sde(s->xt, s->target, s->weight, &p->objective, &proc->sde, x0,
                                s->eps, s->tcont, B, D);
    dfn_model_forward(m, s->pred, s->xt, s->tnet, y, B, train ? DFN_TRAIN : DFN_EVAL, rng);
    /* the network's output as the prediction: pred = c_out F (c_out = 1 but for
     * the score, dfn_prediction_network_scale), so d loss / d F = c_out d loss / d pred */
    const int scaled = p->objective.prediction == DFN_PRED_SCORE;
    if (scaled)
        for (int b = 0; b < B; b++) {
            double a, sg;
            if (!proc->continuous) dfn_schedule_alpha_sigma(dfn_pipeline_schedule(s->pipe), s->tidx[b], &a, &sg);
            else dfn_sde_marginal(&proc->sde, s->tcont[b], &a, &sg);
            s->cout[b] = (float)dfn_prediction_network_scale(p->objective.prediction, a, sg);
            for (size_t i = 0; i < D; i++) s->pred[(size_t)b * D + i] *= s->cout[b];
        }
    double loss = dfn_objective_loss(train ? s->dpred : NULL, &p->objective, s->pred, s->target,
                                     s->weight, B, D);
    if (train) {
        for (int b = 0; b < B; b++) {
            const float c = grad_scale * (scaled ? s->cout[b] : 1.0f);
            if (c != 1.0f)
                for (size_t i = 0; i < D; i++) s->dpred[(size_t)b * D + i] *= c;
        }
        dfn_model_backward(m, s->dpred, NULL);
    }
    return loss;
}

static void describe(void *state, void *run) {
    diffusion_state *s = state;
    char *process = dfn_process_to_json(dfn_pipeline_process(s->pipe),
                                        dfn_pipeline_schedule(s->pipe));
    cJSON_AddItemToObject(run, "process", cJSON_Parse(process));
    cJSON_AddItemToObject(run, "objective", cJSON_Parse(s->objective_json));
    free(process);
    const dfn_model *ae = dfn_pipeline_autoencoder(s->pipe);
    if (ae) { /* what a resumed run must be given again */
        char *config = dfn_model_config_to_json(dfn_model_get_config(ae)), print[17];
        dfn_model_fingerprint(ae, print);
        cJSON *o = cJSON_AddObjectToObject(run, "autoencoder");
        cJSON_AddItemToObject(o, "config", cJSON_Parse(config));
        cJSON_AddStringToObject(o, "fingerprint", print);
        cJSON_AddNumberToObject(o, "latent_scale", dfn_pipeline_latent_scale(s->pipe));
        free(config);
    }
}

static dfn_status save(void *state, dfn_model *m, const char *path, const char *const *extra) {
    (void)m; /* the pipeline's model */
    diffusion_state *s = state;
    const char *meta[16];
    dfn_train_metadata(meta, 16, "objective", s->objective_json, extra);
    return dfn_pipeline_save(s->pipe, path, meta);
}

/* Images -> a grid; 2-D vectors -> a scatter over the data; other vectors ->
 * a line plot of a few. Always the same noise (seed), so previews compare. */
dfn_status dfn_train_preview_pipeline(dfn_pipeline *pipe, const dfn_train_params *p,
                                      const dfn_dataset *data, int count, uint64_t seed,
                                      const char *prefix) {
    const size_t D = dfn_pipeline_sample_size(pipe); /* (a latent model's: decoded) */
    float *x = dfn_malloc((size_t)count * D * sizeof(float));
    dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
    const dfn_process_params *proc = dfn_pipeline_process(pipe);
    sp.sampler_params.steps = dfn_pipeline_consistency(pipe)                     ? 2
                              : proc->continuous && proc->sde.kind == DFN_SDE_VE ? 30
                                                                                 : 0; /* its default */
    sp.batch = 256;
    sp.seed = seed;
    dfn_buf path = {0};
    dfn_buf_printf(&path, "%s.png", prefix);
    dfn_status st = dfn_pipeline_sample(pipe, x, count, &sp, NULL);
    if (st == DFN_OK) st = dfn_make_parent_dir(path.data);
    if (st != DFN_OK) goto done;
    int dims[3];
    if (dfn_pipeline_sample_shape(pipe, dims) == 3) {
        st = dfn_png_write_grid(path.data, x, count, dims[0], dims[1], dims[2],
                                (int)ceil(sqrt((double)count)), dims[1] < 64 ? 2 : 1);
    } else {
        dfn_plot *plot = dfn_plot_new(700, 600);
        if (D == 2) {
            size_t nd = DFN_MIN(dfn_dataset_count(data), (size_t)4096);
            dfn_plot_labels(plot, "samples over data", "x1", "x2");
            if (!p->paired_noise) /* (pairs' rows are not points) */
                dfn_plot_scatter(plot, dfn_dataset_sample(data, 0), (int)nd, "data");
            dfn_plot_scatter(plot, x, count, "samples");
        } else {
            dfn_plot_labels(plot, "samples", "index", "value");
            for (int b = 0; b < count && b < 8; b++)
                dfn_plot_line(plot, NULL, x + (size_t)b * D, (int)D, NULL);
        }
        st = dfn_plot_save(plot, path.data);
        dfn_plot_free(plot);
    }
done:
    dfn_buf_free(&path);
    free(x);
    return st;
}

static dfn_status preview(void *state, dfn_model *m, const dfn_dataset *data, int count,
                          uint64_t seed, const char *prefix) {
    (void)m;
    diffusion_state *s = state;
    return dfn_train_preview_pipeline(s->pipe, s->p, data, count, seed, prefix);
}

dfn_status dfn_train_draw_pipeline(dfn_pipeline *pipe, int count, uint64_t seed, const char *sampler,
                                   int steps, float *out) {
    dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
    sp.sampler = sampler;
    sp.sampler_params.steps = steps;
    sp.batch = 250;
    sp.seed = seed;
    return dfn_pipeline_sample(pipe, out, count, &sp, NULL);
}

static dfn_status draw(void *state, dfn_model *m, int count, uint64_t seed, const char *sampler,
                       int steps, float *out) {
    (void)m;
    return dfn_train_draw_pipeline(((diffusion_state *)state)->pipe, count, seed, sampler, steps, out);
}

const dfn_train_task dfn_diffusion_task = {"diffusion", NULL,     check,   begin,   end,  batch,
                                           describe,    save,     preview, NULL,    NULL, NULL,
                                           draw};

const int *dfn_train_labels(int *y, const int *labels, int B, int K, double p_uncond, float *scratch,
                            dfn_rng *rng) {
    if (K <= 0) return NULL;
    for (int b = 0; b < B; b++) y[b] = labels ? labels[b] : K;
    if (p_uncond > 0) {
        dfn_rng_uniform(rng, scratch, (size_t)B);
        for (int b = 0; b < B; b++)
            if (scratch[b] < p_uncond) y[b] = K;
    }
    return y;
}
