/* Data-parallel `dizuo train` over MPI (train_mpi.c): the program side of
 * the library's gradient hook (dz_train_opts.reduce). The library never
 * calls MPI; this file joins the job, all-reduces the gradients and the
 * loss, checks that every rank holds the same weights, and ends the job
 * (MPI_Finalize, or MPI_Abort when a rank fails, so no rank waits forever
 * on one that has gone). Built with MPI when DZ_HAVE_MPI is defined (CMake
 * option DZ_MPI); otherwise every process is a single rank.
 *
 * One thread per process calls these. */
#ifndef DZ_CLI_TRAIN_MPI_H
#define DZ_CLI_TRAIN_MPI_H

#include <stdbool.h>
#include <stdint.h>

#include "dizuo/train.h"

typedef struct dz_dp {
    int rank, size; /* 0 and 1 for a single process */
    bool joined;    /* MPI_Init was called (and MPI_Finalize or MPI_Abort is due) */
    bool together;  /* set when every rank fails at the same point (a NaN loss, a
                       dz_dp_same mismatch): the ranks then finalize, none aborts */
} dz_dp;

/* Joins the MPI job when the process was started by an MPI launcher
 * (mpirun sets OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK) and dizuo was
 * built with MPI; otherwise dp is rank 0 of 1. Returns false, with a message
 * on stderr, when started as one of several ranks by a build without MPI
 * (each would train alone and write the same files). */
bool dz_dp_init(dz_dp *dp);

/* The dz_grad_reduce_fn of data-parallel training (user: the dz_dp): sums
 * grads over the ranks and divides by their number, so that every rank
 * holds the mean over all rows of the global batch (each rank's grads is the
 * mean over its own rows, and every rank has as many rows); *loss likewise.
 * Every rank ends with bit-identical gradients (reduced to rank 0, then
 * broadcast). A single rank returns at once. */
dz_status dz_dp_reduce(void *user, float *grads, int64_t n, double *loss);

/* True when every rank passes the same `what` (a fingerprint of weights and
 * run settings); false, with a message from rank 0 naming `when`, if not. */
bool dz_dp_same(const dz_dp *dp, uint64_t what, const char *when);

/* A fingerprint of n floats (FNV-1a of their bytes) mixed into h. */
uint64_t dz_dp_hash(uint64_t h, const void *bytes, size_t n);

/* Ends the process's part in the job and returns rc: MPI_Finalize when rc
 * is 0 or dp->together is set; MPI_Abort with rc (which ends every rank, so
 * none waits on this one) otherwise. Rank 0 of 1 or a process that never
 * joined: returns rc. */
int dz_dp_finish(dz_dp *dp, int rc);

#endif
