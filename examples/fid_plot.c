/* fid_plot.c - FID against training minutes, one line per recipe, with the
 * floor (held-out real images at the same N) beside them: the plot of
 * docs/recipes.md, from a CSV the study writes (public API only).
 *
 *     ./example_fid_plot docs/recipes.csv docs/recipes.png
 *
 * Input rows: recipe,minutes,fid,floor (a header line is skipped). Points of
 * one recipe are joined in the order given; the floor drawn is the smallest
 * given (the largest N's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <diffusion.h>

#define MAX_ROWS 256
#define MAX_RECIPES 16

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s RECIPES.csv OUT.png\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    char names[MAX_RECIPES][32], line[256];
    float xs[MAX_RECIPES][MAX_ROWS], ys[MAX_RECIPES][MAX_ROWS], floor_min = 0;
    int counts[MAX_RECIPES] = {0}, n_recipes = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char name[32];
        float minutes, fid, floor_v;
        if (sscanf(line, "%31[^,],%f,%f,%f", name, &minutes, &fid, &floor_v) != 4) {
            if (lineno == 1) continue; /* the header */
            fprintf(stderr, "%s:%d: expected recipe,minutes,fid,floor\n", argv[1], lineno);
            fclose(f);
            return 1;
        }
        int r = 0;
        while (r < n_recipes && strcmp(names[r], name)) r++;
        if (r == n_recipes) {
            if (n_recipes == MAX_RECIPES) continue;
            snprintf(names[n_recipes++], sizeof names[0], "%s", name);
        }
        if (counts[r] < MAX_ROWS) {
            xs[r][counts[r]] = minutes;
            ys[r][counts[r]++] = fid;
        }
        if (floor_v > 0 && (floor_min == 0 || floor_v < floor_min)) floor_min = floor_v;
    }
    fclose(f);
    float xmax = 1;
    for (int r = 0; r < n_recipes; r++)
        for (int i = 0; i < counts[r]; i++) xmax = xs[r][i] > xmax ? xs[r][i] : xmax;
    dfn_plot *p = dfn_plot_new(900, 560);
    dfn_plot_labels(p, "FID against training minutes (2 cores)", "minutes", "FID");
    dfn_plot_log_y(p, 1);
    for (int r = 0; r < n_recipes; r++) {
        dfn_plot_line(p, xs[r], ys[r], counts[r], names[r]);
        dfn_plot_style(p, -1, 1.0f, 2.0f, 1); /* (styles the series just added) */
    }
    if (floor_min > 0) {
        const float fx[2] = {0, xmax}, fy[2] = {floor_min, floor_min};
        dfn_plot_line(p, fx, fy, 2, "floor (test images)");
        dfn_plot_style(p, 0x888888, 1.0f, 1.0f, 0);
    }
    if (dfn_plot_save(p, argv[2]) != DFN_OK) {
        fprintf(stderr, "%s\n", dfn_last_error());
        dfn_plot_free(p);
        return 1;
    }
    dfn_plot_free(p);
    return 0;
}
