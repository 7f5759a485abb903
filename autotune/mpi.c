/* Tuning over MPI ranks, one device each. Rank 0 runs the search and is the
 * only rank that opens the database; every round it broadcasts the batch,
 * each rank builds and runs its share (positions i with i % size == rank),
 * and rank 0 gathers the trials and commits every one. Built only when
 * MFX_HAVE_MPI is defined; otherwise --mpi is a clear error. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autotune_internal.h"

#ifdef MFX_HAVE_MPI
#include <mpi.h>

int mfx_tune_mpi_available(void) { return 1; }

mfx_status mfx_tune_mpi_init(int *argc, char ***argv, int *rank, int *size) {
  int ready = 0;
  MPI_Initialized(&ready);
  if (!ready && MPI_Init(argc, argv) != MPI_SUCCESS)
    return mfx_fail(MFX_ERR_DEVICE, "--mpi: MPI_Init failed");
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  return MFX_OK;
}

void mfx_tune_mpi_finalize(void) {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}

typedef struct {
  mfx_runner *runner;
  mfx_space space;
  int rank, size;
  /* the round being evaluated */
  mfx_trial_done_fn done;
  void *done_user;
  const int *positions; /* this rank's share: batch positions */
} tune_mpi;

/* The CPUs of this node shared among the ranks on it (each rank is one
 * device: on a CPU, its share of the cores). */
static int tune_mpi_threads_per_rank(void) {
  MPI_Comm node;
  int on_node = 1;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
      MPI_SUCCESS) {
    MPI_Comm_size(node, &on_node);
    MPI_Comm_free(&node);
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  long share = cpus / (on_node > 0 ? on_node : 1);
  return share >= 1 ? (int)share : 1;
}

/* All ranks agree that every one of them is ready (rank-local status in). */
static mfx_status tune_mpi_agree(mfx_status local, const char *what) {
  int bad = local != MFX_OK, any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (local != MFX_OK) return local;
  if (any) return mfx_fail(MFX_ERR_DEVICE, "--mpi: another rank failed %s", what);
  return MFX_OK;
}

/* The batch positions of `rank`'s share; returns how many. */
static int tune_mpi_share(int n, int rank, int size, int *positions) {
  int k = 0;
  for (int i = rank; i < n; i += size) positions[k++] = i;
  return k;
}

static void tune_mpi_local_done(void *user, int i, const mfx_trial *t) {
  tune_mpi *m = user;
  if (m->done != NULL) m->done(m->done_user, m->positions[i], t);
}

/* Build and run this rank's share; failures of the whole step become error
 * trials so that the gather still lines up. */
static void tune_mpi_run_share(tune_mpi *m, int k, const uint64_t *indices, const int *positions,
                               mfx_trial *share) {
  mfx_config *cfgs = malloc(sizeof *cfgs * (size_t)(k + 1));
  mfx_status st = cfgs ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "--mpi: out of memory");
  for (int j = 0; st == MFX_OK && j < k; j++)
    mfx_space_config(&m->space, indices[positions[j]], &cfgs[j]);
  m->positions = positions;
  if (st == MFX_OK) st = mfx_runner_evaluate(m->runner, k, cfgs, share, tune_mpi_local_done, m);
  for (int j = 0; st != MFX_OK && j < k; j++) {
    memset(&share[j], 0, sizeof share[j]);
    if (cfgs != NULL) share[j].cfg = cfgs[j];
    share[j].status = MFX_TRIAL_ERROR;
    share[j].rank = m->rank;
    snprintf(share[j].error, sizeof share[j].error, "rank %d: %s", m->rank, mfx_last_error());
  }
  free(cfgs);
}

/* One round on every rank: n and the indices come from rank 0. */
static mfx_status tune_mpi_round(tune_mpi *m, int n, const uint64_t *indices, mfx_trial *all) {
  int *positions = malloc(sizeof(int) * (size_t)(n + 1));
  mfx_trial *share = malloc(sizeof(mfx_trial) * (size_t)(n / m->size + 1));
  int *counts = malloc(sizeof(int) * (size_t)m->size * 2);
  if (positions == NULL || share == NULL || counts == NULL) {
    free(positions);
    free(share);
    free(counts);
    return mfx_fail(MFX_ERR_NOMEM, "--mpi: out of memory");
  }
  int k = tune_mpi_share(n, m->rank, m->size, positions);
  tune_mpi_run_share(m, k, indices, positions, share);
  int *displs = counts + m->size, off = 0;
  for (int r = 0; r < m->size; r++) {
    counts[r] = tune_mpi_share(n, r, m->size, positions) * (int)sizeof(mfx_trial);
    displs[r] = off;
    off += counts[r];
  }
  MPI_Gatherv(share, k * (int)sizeof(mfx_trial), MPI_BYTE, all, counts, displs, MPI_BYTE, 0,
              MPI_COMM_WORLD);
  free(positions);
  free(share);
  free(counts);
  return MFX_OK;
}

/* Rank 0's evaluation step: rank 0's own trials are committed as they
 * finish, the others' once gathered (rank-major order in `gathered`). */
static mfx_status tune_mpi_evaluate(void *user, int n, const uint64_t *indices,
                                    mfx_trial *trials, mfx_trial_done_fn done,
                                    void *done_user) {
  tune_mpi *m = user;
  mfx_trial *gathered = malloc(sizeof(mfx_trial) * (size_t)n);
  int *positions = malloc(sizeof(int) * (size_t)n);
  if (gathered == NULL || positions == NULL) {
    free(gathered);
    free(positions);
    return mfx_fail(MFX_ERR_NOMEM, "--mpi: out of memory");
  }
  int header[1] = {n};
  MPI_Bcast(header, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Bcast((void *)indices, n, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  m->done = done;
  m->done_user = done_user;
  mfx_status st = tune_mpi_round(m, n, indices, gathered);
  int g = tune_mpi_share(n, 0, m->size, positions);
  for (int r = 1; st == MFX_OK && r < m->size; r++) {
    int k = tune_mpi_share(n, r, m->size, positions);
    for (int j = 0; j < k; j++, g++) {
      trials[positions[j]] = gathered[g];
      done(done_user, positions[j], &trials[positions[j]]);
    }
  }
  free(gathered);
  free(positions);
  return st;
}

/* Ranks other than 0: run shares until rank 0 says stop (n < 0). */
static mfx_status tune_mpi_serve(tune_mpi *m, mfx_tune_summary *out) {
  for (;;) {
    int header[1];
    MPI_Bcast(header, 1, MPI_INT, 0, MPI_COMM_WORLD);
    int n = header[0];
    if (n < 0) return MFX_OK;
    uint64_t *indices = malloc(sizeof *indices * (size_t)(n + 1));
    if (indices == NULL) return mfx_fail(MFX_ERR_NOMEM, "--mpi: out of memory");
    MPI_Bcast(indices, n, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    m->done = NULL;
    mfx_status st = tune_mpi_round(m, n, indices, NULL);
    out->trials += (n - m->rank + m->size - 1) / m->size;
    free(indices);
    if (st != MFX_OK) return st;
  }
}

static mfx_status tune_mpi_root(tune_mpi *m, const char *db_path, const mfx_tune_key *key,
                                const mfx_tune_options *o, mfx_tune_summary *out) {
  mfx_tune_db *db = NULL;
  mfx_status st = mfx_tune_db_open(db_path, &db);
  int ok = st == MFX_OK;
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (st != MFX_OK) return st;
  int batch = m->size * (tune_default_batch(o) / 2 > 1 ? tune_default_batch(o) / 2 : 1);
  if (o->batch > 0) batch = o->batch;
  st = tune_run_loop(db, key, o, batch, tune_mpi_evaluate, m, out);
  int stop[1] = {-1};
  MPI_Bcast(stop, 1, MPI_INT, 0, MPI_COMM_WORLD);
  mfx_tune_db_close(db);
  return st;
}

mfx_status mfx_tune_mpi(const char *db_path, const mfx_tune_key *key, const mfx_tune_options *o,
                        mfx_tune_summary *out) {
  if (db_path == NULL || key == NULL || key->op == NULL || o == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "--mpi: db path, key, options and summary are needed");
  tune_mpi m;
  memset(&m, 0, sizeof m);
  memset(out, 0, sizeof *out);
  MPI_Comm_rank(MPI_COMM_WORLD, &m.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &m.size);
  mfx_status st = tune_space_init_key(&m.space, key);
  mfx_runner_options runner = o->runner;
  runner.rank = m.rank;
  if (runner.threads <= 0) runner.threads = tune_mpi_threads_per_rank();
  char gpu[32]; /* one rank per GPU: rank r measures on device r mod the count */
  if (st == MFX_OK) st = tune_gpu_rank_target(runner.target, m.rank, gpu, sizeof gpu);
  if (st == MFX_OK && gpu[0] != '\0') runner.target = gpu;
  if (st == MFX_OK) st = mfx_runner_create(key->op, key->dims, &runner, &m.runner);
  st = tune_mpi_agree(st, "to set up its runner");
  if (st == MFX_OK && m.rank == 0) st = tune_mpi_root(&m, db_path, key, o, out);
  if (st == MFX_OK && m.rank != 0) {
    int ok = 0;
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    st = ok ? tune_mpi_serve(&m, out)
            : mfx_fail(MFX_ERR_IO, "--mpi: rank 0 could not open the database %s", db_path);
  }
  mfx_runner_destroy(m.runner);
  return st;
}

#else /* no MPI */

static mfx_status tune_no_mpi(void) {
  return mfx_fail(MFX_ERR_DEVICE,
                  "--mpi: this mfx was built without MPI; install an MPI implementation "
                  "(apt-get install libopenmpi-dev) and rebuild, or tune without --mpi");
}

int mfx_tune_mpi_available(void) { return 0; }

mfx_status mfx_tune_mpi_init(int *argc, char ***argv, int *rank, int *size) {
  (void)argc;
  (void)argv;
  *rank = 0;
  *size = 1;
  return tune_no_mpi();
}

void mfx_tune_mpi_finalize(void) {}

mfx_status mfx_tune_mpi(const char *db_path, const mfx_tune_key *key, const mfx_tune_options *o,
                        mfx_tune_summary *out) {
  (void)db_path;
  (void)key;
  (void)o;
  (void)out;
  return tune_no_mpi();
}

#endif
