/* Data-parallel `dizuo train` over MPI (see train_mpi.h). Without
 * DZ_HAVE_MPI every process is a single rank and the collectives are
 * no-ops. */
#include "cli/train_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DZ_HAVE_MPI
#include <mpi.h>
#endif

/* An environment variable as a number; -1 when unset or not a number. */
static long env_long(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end;
    long x = strtol(v, &end, 10);
    return *end ? -1 : x;
}

uint64_t dz_dp_hash(uint64_t h, const void *bytes, size_t n) {
    const unsigned char *p = bytes;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* 8 bytes at a time: weights are large */
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#ifdef DZ_HAVE_MPI

enum { CHUNK = 1 << 28 }; /* MPI counts are int: reduce in pieces */

/* Whether an MPI launcher started this process (Open MPI's mpirun, PMIx,
 * MPICH's hydra or Slurm's PMI). */
static bool launched_by_mpi(void) {
    return env_long("OMPI_COMM_WORLD_SIZE") >= 0 || env_long("PMIX_RANK") >= 0 || env_long("PMI_RANK") >= 0;
}


bool dz_dp_init(dz_dp *dp) {
    memset(dp, 0, sizeof *dp);
    dp->size = 1;
    if (!launched_by_mpi()) return true;
    int provided = 0;
    /* Only the main thread calls MPI; the CPU backend's workers never do. */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "dizuo train: MPI_Init failed\n");
        return false;
    }
    dp->joined = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &dp->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dp->size);
    return true;
}

/* Sums buf over the ranks into every rank's buf, bit-identically on all of
 * them: reduced to rank 0 (in whatever order MPI chooses), then broadcast. */
static bool sum_all(const dz_dp *dp, void *buf, int count, MPI_Datatype type) {
    void *send = dp->rank == 0 ? MPI_IN_PLACE : buf;
    return MPI_Reduce(send, buf, count, type, MPI_SUM, 0, MPI_COMM_WORLD) == MPI_SUCCESS &&
           MPI_Bcast(buf, count, type, 0, MPI_COMM_WORLD) == MPI_SUCCESS;
}

dz_status dz_dp_reduce(void *user, float *grads, int64_t n, double *loss) {
    const dz_dp *dp = user;
    if (dp->size < 2) return DZ_OK;
    for (int64_t off = 0; off < n; off += CHUNK) {
        int count = (int)(n - off < CHUNK ? n - off : CHUNK);
        if (!sum_all(dp, grads + off, count, MPI_FLOAT))
            return dz_fail(DZ_ERR_IO, "MPI: reducing the gradients failed");
    }
    if (!sum_all(dp, loss, 1, MPI_DOUBLE)) return dz_fail(DZ_ERR_IO, "MPI: reducing the loss failed");
    const float inv = (float)(1.0 / dp->size);
    for (int64_t j = 0; j < n; j++) grads[j] *= inv;
    *loss /= dp->size;
    return DZ_OK;
}

bool dz_dp_same(const dz_dp *dp, uint64_t what, const char *when) {
    if (dp->size < 2) return true;
    /* max(h) and max(~h) = ~min(h): all equal iff both match this rank's. */
    uint64_t v[2] = {what, ~what};
    if (MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) {
        fprintf(stderr, "dizuo train: rank %d: MPI_Allreduce failed\n", dp->rank);
        return false;
    }
    if (v[0] == what && v[1] == ~what) return true;
    if (dp->rank == 0)
        fprintf(stderr,
                "dizuo train: the %d ranks differ %s (weights or settings): give every rank the same "
                "arguments and files\n",
                dp->size, when);
    return false;
}

int dz_dp_finish(dz_dp *dp, int rc) {
    if (!dp->joined) return rc;
    dp->joined = false;
    fflush(stdout);
    fflush(stderr);
    if (rc != 0 && !dp->together && dp->size > 1) MPI_Abort(MPI_COMM_WORLD, rc); /* ends every rank */
    MPI_Finalize();
    return rc;
}

#else /* no MPI: one rank */

bool dz_dp_init(dz_dp *dp) {
    memset(dp, 0, sizeof *dp);
    dp->size = 1;
    long size = env_long("OMPI_COMM_WORLD_SIZE");
    if (size < 0) size = env_long("PMI_SIZE");
    if (size > 1 || env_long("PMIX_RANK") > 0 || env_long("PMI_RANK") > 0) {
        fprintf(stderr,
                "dizuo train: started as one of several MPI ranks, but this dizuo was built without MPI "
                "(install libopenmpi-dev and rebuild with -DDZ_MPI=ON)\n");
        return false;
    }
    return true;
}

dz_status dz_dp_reduce(void *user, float *grads, int64_t n, double *loss) {
    (void)user;
    (void)grads;
    (void)n;
    (void)loss;
    return DZ_OK;
}

bool dz_dp_same(const dz_dp *dp, uint64_t what, const char *when) {
    (void)dp;
    (void)what;
    (void)when;
    return true;
}

int dz_dp_finish(dz_dp *dp, int rc) {
    (void)dp;
    return rc;
}

#endif
