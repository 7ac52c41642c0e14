// CKernels: the few kernels that need instructions Swift cannot name (AVX512-BF16), with a
// portable fallback chosen at run time, and the OpenMP thread count of oneDNN. No stable API:
// only the Kernels module calls these.
#ifndef LFLOW_CKERNELS_H
#define LFLOW_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has AVX512-BF16 (and the AVX512F/BW it builds on), else 0.
int lf_cpu_has_avx512_bf16(void);

/// float32 → bfloat16, round to nearest even (NaN stays NaN), as oneDNN's reorder does.
/// Uses vcvtne2ps2bf16 when the CPU has it, else a portable loop.
void lf_f32_to_bf16(const float *src, uint16_t *dst, size_t n);

/// The OpenMP threads that oneDNN uses when called from this thread.
void lf_set_openmp_threads(int n);

#endif
