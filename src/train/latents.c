/* latents.c - latent diffusion's data (Rombach et al. 2022, section 3.3): a
 * dataset of images becomes the dataset of their autoencoder latents, the
 * posterior means times the latent scale that brings them to unit variance
 * (their "z = E(x)", scaled as Stable Diffusion scales by 0.18215). */
#include "train/train.h"

#define ENCODE_CHUNK 256 /* images per dfn_autoencoder_encode call */

dfn_status dfn_encode_dataset(dfn_dataset **out, dfn_model *ae, double scale,
                              const dfn_dataset *ds) {
    DFN_ASSERT(out && ae && ds && scale > 0);
    *out = NULL;
    int dims[3];
    dfn_autoencoder_latent_shape(ae, dims);
    const size_t n = dfn_dataset_count(ds), D = dfn_dataset_sample_size(ds);
    const size_t L = dfn_autoencoder_latent_size(ae);
    const int *labels = dfn_dataset_labels((dfn_dataset *)ds);
    dfn_dataset *lat;
    dfn_status st = dfn_dataset_new(&lat, n, 3, dims, labels ? dfn_dataset_num_classes(ds) : 0);
    if (st != DFN_OK) return st;
    float *z = dfn_dataset_data(lat);
    for (size_t i = 0; i < n; i += ENCODE_CHUNK) {
        const int b = (int)DFN_MIN((size_t)ENCODE_CHUNK, n - i);
        dfn_autoencoder_encode(ae, z + i * L, NULL, dfn_dataset_sample(ds, 0) + i * D, b);
    }
    for (size_t k = 0; k < n * L; k++) z[k] = (float)(z[k] * scale);
    if (labels)
        for (size_t i = 0; i < n; i++) dfn_dataset_labels(lat)[i] = labels[i];
    *out = lat;
    return DFN_OK;
}
