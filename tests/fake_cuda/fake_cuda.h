/* The test hooks of the fake CUDA driver (tests/fake_cuda/fake_cuda.c): a
 * test dlopens the same library that the runtime opened and asks it what the
 * runtime did. */
#ifndef FAKE_CUDA_H
#define FAKE_CUDA_H

#define FAKE_CUDA_MAX_PARAMS 16
/* Streams made by cuStreamCreate get ids 1 .. FAKE_CUDA_MAX_STREAMS - 1
 * (wrapping after that many); 0 is the legacy default stream (NULL). */
#define FAKE_CUDA_MAX_STREAMS 256

/* One cuLaunchKernel call as the fake saw it. */
typedef struct {
  char name[64];
  unsigned grid[3];
  unsigned block[3];
  unsigned shared_bytes;
  int stream_is_default;                           /* hStream was NULL */
  int param_count;                                 /* from the PTX .entry */
  unsigned param_bytes[FAKE_CUDA_MAX_PARAMS];      /* size of each .param */
  unsigned char params[FAKE_CUDA_MAX_PARAMS][8];   /* the values passed */
  int stream_id;                                   /* 0: the legacy default stream */
} fake_cuda_launch;

/* Counters of what is alive, and launches so far. */
typedef struct {
  int allocations;
  int modules;
  int events;
  int primary_refs; /* primary-context retains not yet released, all devices */
  int launches;
  int bad_context_calls; /* calls made with no (or a released) context current */
  unsigned long long htod_bytes, dtoh_bytes, dtod_bytes; /* copied so far, by direction */
  unsigned long long memset_bytes;
  int streams;          /* made by cuStreamCreate, not yet destroyed */
  int stream_syncs;     /* cuStreamSynchronize calls */
  int context_syncs;    /* cuCtxSynchronize calls */
  /* Launches, copies and memsets so far by the stream they were queued on
   * (index: stream id; the synchronous calls count on 0, the legacy stream). */
  unsigned long long ops_on_stream[FAKE_CUDA_MAX_STREAMS];
  /* Graphs: launches recorded by captures (not run then, not in
   * `launches`), cuGraphLaunch calls, the kernels those replays ran, and
   * graphs and instantiated graphs alive. */
  int captured_launches;
  int graph_launches;
  int graph_kernels;
  int graphs, graph_execs;
} fake_cuda_counts;

typedef void (*fake_cuda_last_launch_fn)(fake_cuda_launch *out);
typedef void (*fake_cuda_counts_fn)(fake_cuda_counts *out);

#endif
