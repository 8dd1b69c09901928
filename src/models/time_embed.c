/* time_embed.c - the conditioning both networks share (Ho et al. 2020, appendix B):
 *   emb = temb.2(silu(temb.0(sinusoidal(t, dim)))) [+ label_emb(y)],
 * and every block consumes silu(emb). Label num_classes is the null class of
 * classifier-free guidance (Ho & Salimans 2022), used when y is NULL. */
#include <string.h>

#include "models/model.h"
#include "nn/nn.h"

void dfn_time_embed_params(dfn_time_embed *te, dfn_param_table *tab, int dim, int emb_dim,
                           int num_classes) {
    memset(te, 0, sizeof *te);
    te->dim = dim;
    te->emb_dim = emb_dim;
    te->num_classes = num_classes;
    te->lin0 = dfn_param_linear(tab, "temb.0", emb_dim, dim);
    te->lin2 = dfn_param_linear(tab, "temb.2", emb_dim, emb_dim);
    te->label = (size_t)-1;
    if (num_classes > 0)
        te->label = dfn_param_add(tab, INIT_NORMAL, 0, 2, (int[]){num_classes + 1, emb_dim},
                                  "label_emb.weight");
}

void dfn_time_embed_take(dfn_time_embed *te, dfn_model *m, int B) {
    te->sin_emb = dfn_arena_take(&m->acts, (size_t)B * te->dim);
    te->h0 = dfn_arena_take(&m->acts, (size_t)B * te->emb_dim);
    te->s0 = dfn_arena_take(&m->acts, (size_t)B * te->emb_dim);
    te->emb = dfn_arena_take(&m->acts, (size_t)B * te->emb_dim);
    te->silu_emb = dfn_arena_take(&m->acts, (size_t)B * te->emb_dim);
    te->labels = (int *)dfn_arena_take(&m->acts, (size_t)B);
    te->label_rows = dfn_arena_take(&m->acts, (size_t)B * te->emb_dim);
    te->d_silu_emb = dfn_arena_take(&m->grad_acts, (size_t)B * te->emb_dim);
    te->d_emb = dfn_arena_take(&m->grad_acts, (size_t)B * te->emb_dim);
    te->d_s0 = dfn_arena_take(&m->grad_acts, (size_t)B * te->emb_dim);
    te->d_h0 = dfn_arena_take(&m->grad_acts, (size_t)B * te->emb_dim);
}

void dfn_time_embed_forward(dfn_time_embed *te, dfn_model *m, const float *t, const int *y, int B) {
    const float *P = m->params;
    int E = te->emb_dim;
    dfn_timestep_embedding(te->sin_emb, t, B, te->dim);
    dfn_linear_forward(te->h0, te->sin_emb, P + te->lin0.w, P + te->lin0.b, B, te->dim, E);
    dfn_silu_forward(te->s0, te->h0, (size_t)B * E);
    dfn_linear_forward(te->emb, te->s0, P + te->lin2.w, P + te->lin2.b, B, E, E);
    if (te->num_classes > 0) {
        for (int b = 0; b < B; b++) {
            int label = y ? y[b] : te->num_classes;
            DFN_ASSERT(label >= 0 && label <= te->num_classes);
            te->labels[b] = label;
        }
        dfn_embedding_forward(te->label_rows, te->labels, P + te->label, B, E);
        for (size_t i = 0; i < (size_t)B * E; i++) te->emb[i] += te->label_rows[i];
    }
    dfn_silu_forward(te->silu_emb, te->emb, (size_t)B * E);
    memset(te->d_silu_emb, 0, (size_t)B * E * sizeof(float));
}

/* Backward of the lines above, once the blocks have accumulated d_silu_emb. */
void dfn_time_embed_backward(dfn_time_embed *te, dfn_model *m, int B) {
    const float *P = m->params;
    float *G = m->grads;
    int E = te->emb_dim;
    float *d_emb = te->d_emb, *d_s0 = te->d_s0, *d_h0 = te->d_h0;
    memset(d_emb, 0, (size_t)B * E * sizeof(float));
    memset(d_s0, 0, (size_t)B * E * sizeof(float));
    memset(d_h0, 0, (size_t)B * E * sizeof(float));
    dfn_silu_backward(d_emb, te->d_silu_emb, te->emb, (size_t)B * E);
    if (te->num_classes > 0) dfn_embedding_backward(G + te->label, d_emb, te->labels, B, E);
    dfn_linear_backward(d_s0, G + te->lin2.w, G + te->lin2.b, d_emb, te->s0, P + te->lin2.w, B, E, E);
    dfn_silu_backward(d_h0, d_s0, te->h0, (size_t)B * E);
    dfn_linear_backward(NULL, G + te->lin0.w, G + te->lin0.b, d_h0, te->sin_emb, P + te->lin0.w,
                        B, te->dim, E);
}
