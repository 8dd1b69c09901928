/* test_spectrum.c - seed 000's covariance view (src/eval/spectrum.c):
 *   - the eigen-decomposition rebuilds the covariance (U diag(l) U^T = C to
 *     1e-12), U is orthonormal, eigenvalues descend, and a diagonal matrix
 *     gives its diagonal;
 *   - the similarity matrix is the seed's formula on hand-checked vectors;
 *   - colored noise has the mean and covariance asked for (every entry within
 *     5 standard errors, sqrt((C_ii C_jj + C_ij^2) / m)), lies in the span of a
 *     singular covariance, and the same seed gives the same bits;
 *   - bad input: a NaN covariance, no vectors. */
#include <math.h>
#include <string.h>

#include "test_util.h"

static void eigen_rebuilds_the_covariance(void) {
    enum { D = 4 };
    /* C = A A^T + 0.1 I for a fixed A: symmetric positive definite */
    const double A[D * D] = {1, 2, 0, -1, 0.5, -1, 3, 0, 2, 0, 1, 1, -1, 1, 0.5, 2};
    double C[D * D], l[D], U[D * D];
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = i == j ? 0.1 : 0.0;
            for (int k = 0; k < D; k++) s += A[i * D + k] * A[j * D + k];
            C[i * D + j] = s;
        }
    CHECK(dfn_covariance_eigen(l, U, C, D) == DFN_OK, "eigen: %s", dfn_last_error());
    double err = 0.0, orth = 0.0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double r = 0.0, o = 0.0;
            for (int k = 0; k < D; k++) {
                r += U[i * D + k] * l[k] * U[j * D + k];
                o += U[k * D + i] * U[k * D + j];
            }
            err = fmax(err, fabs(r - C[i * D + j]));
            orth = fmax(orth, fabs(o - (i == j)));
        }
    CHECK(err < 1e-12 && orth < 1e-12, "U diag(l) U^T = C (%.3g), U^T U = I (%.3g)", err, orth);
    CHECK(l[0] >= l[1] && l[1] >= l[2] && l[2] >= l[3] && l[3] > 0, "descending, positive: %g %g %g %g",
          l[0], l[1], l[2], l[3]);
    const double diag[9] = {2, 0, 0, 0, 5, 0, 0, 0, 0.5};
    double ld[3];
    CHECK(dfn_covariance_eigen(ld, NULL, diag, 3) == DFN_OK && fabs(ld[0] - 5) < 1e-14 &&
              fabs(ld[1] - 2) < 1e-14 && fabs(ld[2] - 0.5) < 1e-14,
          "a diagonal matrix's eigenvalues: %g %g %g", ld[0], ld[1], ld[2]);
    double bad[4] = {1, 0, 0, NAN};
    CHECK(dfn_covariance_eigen(ld, NULL, bad, 2) == DFN_ERR_NUMERIC && strstr(dfn_last_error(), "(1, 1)"),
          "a NaN entry is refused and named: %s", dfn_last_error());
}

static void similarity_is_the_seeds_formula(void) {
    const float x[2 * 3] = {0.0f, 1.0f, 3.0f, 2.0f, 2.0f, 0.0f};
    double S[9];
    CHECK(dfn_similarity_matrix(S, x, 2, 3) == DFN_OK, "similarity: %s", dfn_last_error());
    /* S_01: |0 - 1| = 1 and |2 - 2| = 0; S_02: 3 and 2; S_12: 2 and 2 */
    const double e01 = 0.5 * (2 / (1 + exp(1.0)) + 1.0), e02 = 0.5 * (2 / (1 + exp(3.0)) + 2 / (1 + exp(2.0)));
    const double e12 = 2 / (1 + exp(2.0));
    CHECK(fabs(S[0] - 1) < 1e-15 && fabs(S[4] - 1) < 1e-15 && fabs(S[8] - 1) < 1e-15, "S_ii = 1");
    CHECK(fabs(S[1] - e01) < 1e-15 && fabs(S[3] - e01) < 1e-15 && fabs(S[2] - e02) < 1e-15 &&
              fabs(S[6] - e02) < 1e-15 && fabs(S[5] - e12) < 1e-15 && fabs(S[7] - e12) < 1e-15,
          "S_ij by hand: %g %g %g", S[1], S[2], S[5]);
    CHECK(dfn_similarity_matrix(S, x, 0, 3) == DFN_ERR_ARG, "no vectors: %s", dfn_last_error());
}

static void colored_noise_has_the_covariance(void) {
    enum { D = 3, M = 200000 };
    const double C[D * D] = {2.0, 0.8, -0.3, 0.8, 1.0, 0.2, -0.3, 0.2, 0.5}, mean[D] = {1.0, -2.0, 0.5};
    double l[D], U[D * D], m_hat[D], C_hat[D * D];
    CHECK(dfn_covariance_eigen(l, U, C, D) == DFN_OK, "eigen");
    float *x = malloc(sizeof(float) * M * D), *y = malloc(sizeof(float) * M * D);
    dfn_rng rng = dfn_rng_init(7), rng2 = dfn_rng_init(7);
    dfn_colored_noise(x, M, D, mean, l, U, &rng);
    dfn_colored_noise(y, M, D, mean, l, U, &rng2);
    CHECK(memcmp(x, y, sizeof(float) * M * D) == 0, "same seed, same bits");
    CHECK(dfn_feature_stats(m_hat, C_hat, x, M, D) == DFN_OK, "stats");
    int bad = 0;
    for (int i = 0; i < D; i++) {
        if (fabs(m_hat[i] - mean[i]) > 5 * sqrt(C[i * D + i] / M)) bad++;
        for (int j = 0; j < D; j++) {
            const double se = sqrt((C[i * D + i] * C[j * D + j] + C[i * D + j] * C[i * D + j]) / M);
            if (fabs(C_hat[i * D + j] - C[i * D + j]) > 5 * se) {
                bad++;
                fprintf(stderr, "  C[%d][%d] = %g, want %g +- %g\n", i, j, C_hat[i * D + j], C[i * D + j], se);
            }
        }
    }
    CHECK(bad == 0, "colored noise: mean and covariance within 5 standard errors (%d off)", bad);
    /* a singular covariance (rank 1 along u = (1, 1, 0) / sqrt 2): samples stay on the line */
    const double S[D * D] = {0.5, 0.5, 0, 0.5, 0.5, 0, 0, 0, 0}, zero[D] = {0, 0, 0};
    CHECK(dfn_covariance_eigen(l, U, S, D) == DFN_OK, "eigen of a singular covariance");
    dfn_colored_noise(x, 1000, D, zero, l, U, &rng);
    double off = 0.0;
    for (int s = 0; s < 1000; s++) off = fmax(off, fmax(fabs(x[s * D] - x[s * D + 1]), fabs(x[s * D + 2])));
    CHECK(off < 1e-5, "colored noise of a singular covariance lies in its span (off by %.3g)", off);
    free(x);
    free(y);
}

int main(void) {
    eigen_rebuilds_the_covariance();
    similarity_is_the_seeds_formula();
    colored_noise_has_the_covariance();
    TEST_MAIN_END();
}
