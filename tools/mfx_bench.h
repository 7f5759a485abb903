/* mfx bench (mfx_bench.c) and its cuBLAS baseline (mfx_bench_cublas.c). */
#ifndef MFX_TOOL_BENCH_H
#define MFX_TOOL_BENCH_H

#include "mfx/device.h"
#include "mfx_cli.h"

/* The median of n seconds (sorts them). */
double bench_median(double *seconds, int n);
/* cuBLAS SGEMM at the op's dense float equivalent on `device` ("cuda:N"):
 * medians of `repeat` event-timed runs, TF32 off (*fp32) and on (*tf32).
 * 0 with the reason in why when there is no cuBLAS or no equivalent. */
int bench_cublas_times(const tool_problem *p, const char *device, int repeat, double *fp32,
                       double *tf32, char *why, size_t cap);

#endif
