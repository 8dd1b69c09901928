/* dist.h - what the library's distributed parts use of MPI (dist.c): ranks, a
 * sum in a fixed order, copies between ranks, agreement on errors. Without MPI
 * (not built with it, or not started by mpirun) there is one rank and every
 * call here is a no-op or a local copy, so callers need no second code path.
 *
 * Same bits for any number of processes: nothing here adds floats in an order
 * that depends on the rank count. dfn_dist_ordered_sum adds per-shard arrays
 * strictly left to right over the shard index, passing the running sum from
 * rank to rank; everything else moves bytes without arithmetic. (MPI_Allreduce
 * is avoided for floats on purpose: Open MPI picks its algorithm, and so the
 * order of additions, by process count and message size.) */
#ifndef DFN_DIST_H
#define DFN_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"

/* The blocks of all ranks, as rows (malloc'ed, size + 1 entries): each rank
 * takes a contiguous block of the items (the first items % size ranks one
 * more), item i starting at row i * rows_per_item, at most rows: rank r holds
 * rows [first[r], first[r + 1]), first[size] = rows. */
size_t *dfn_dist_blocks(size_t items, size_t rows_per_item, size_t rows);

/* Every rank's status; all ranks return the status of the lowest failing rank
 * (DFN_OK if none failed), with its message as dfn_last_error everywhere ("rank
 * r: ..." on the others). Call it where every rank arrives, before the next
 * exchange, so that a rank that failed alone does not leave the others
 * waiting. */
dfn_status dfn_dist_agree(dfn_status st);

/* acc = g_0 + g_1 + ... + g_{S-1} (n floats each), added left to right in shard
 * order whatever the number of ranks; the result on every rank. On entry, rank
 * 0 holds in acc the sum of its own shards (0 .. k-1, summed the same way);
 * every other rank holds its shards' arrays in own[0 .. count-1] (in order),
 * and acc is scratch. The running sum goes from rank to rank in chunks (a
 * pipeline), then the last rank's total is copied to all. */
void dfn_dist_ordered_sum(float *acc, float *const *own, int count, size_t n);

/* acc[i] += g[i]: the one addition of the ordered sum. */
void dfn_dist_add(float *acc, const float *g, size_t n);

/* Gathers rows: rank r holds rows [first[r], first[r + 1]) of data (row_bytes
 * each); afterwards every rank holds all first[size] rows. */
void dfn_dist_allgather_rows(void *data, size_t row_bytes, const size_t *first);

/* Copies bytes from root to every rank. */
void dfn_dist_broadcast(void *data, size_t bytes, int root);

/* 0 if every rank passed the same bytes; else 1 and, in what, which rank
 * differs from rank 0 (e.g. "rank 2 was started with other arguments"). */
int dfn_dist_differs(const void *bytes, size_t n, const char *noun, char *what, size_t size);

/* Checks that every rank sees dir as the same directory (rank 0 writes a token
 * file in it, the others read it back): DFN_ERR_IO naming dir and the rank that
 * cannot see it (not a shared file system), on every rank. */
dfn_status dfn_dist_check_shared_dir(const char *dir);

/* Seconds spent in this module's exchanges (waiting included) since start. */
double dfn_dist_seconds(void);

#endif
