// CKernels: the few kernels that need instructions Swift cannot name (AVX512-BF16, AVX2), with a
// portable fallback chosen at run time, and the OpenMP thread count of oneDNN. No stable API:
// only the Kernels module calls these.
#ifndef LFLOW_CKERNELS_H
#define LFLOW_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has AVX512-BF16 (and the AVX512F/BW it builds on), else 0.
int lf_cpu_has_avx512_bf16(void);

/// float32 → bfloat16, round to nearest even (NaN stays NaN, subnormals become ±0), as
/// oneDNN's reorder and the vcvtne2ps2bf16 instruction do. Uses the instruction when the CPU
/// has it and `lf_bf16_use_instructions` has not turned it off, else a portable loop that
/// gives the same bits.
void lf_f32_to_bf16(const float *src, uint16_t *dst, size_t n);

/// The portable loop of `lf_f32_to_bf16`, always (tests compare the two).
void lf_f32_to_bf16_portable(const float *src, uint16_t *dst, size_t n);

/// bfloat16 → float32 (exact: the 16 bits become the high half).
void lf_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

/// 0: `lf_f32_to_bf16` uses the portable loop even on a CPU with AVX512-BF16 (the Kernels
/// module sets this from oneDNN's effective ISA, so DNNL_MAX_CPU_ISA governs both); 1: the
/// instruction where the CPU has it (the default).
void lf_bf16_use_instructions(int on);

/// 1 when this CPU has AVX2, else 0.
int lf_cpu_has_avx2(void);

/// Philox4x32-10 blocks number first, first+1, … (the first counter word, wrapping at 2³²) with
/// the other three counter words c1, c2, c3 and key (k0, k1), sixteen at a time with AVX-512F,
/// eight with AVX2: writes the words of the first 16·⌊blocks/16⌋ (8·⌊blocks/8⌋) blocks (block
/// i's at out[4i…4i+3]) and returns how many blocks it wrote — 0 on a CPU without either, where
/// the caller makes them all.
size_t lf_philox_blocks(uint32_t first, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                        size_t blocks, uint32_t *out);

/// y[i] = e^x[i] in single precision, within 2 ulp (subnormal results flushed to 0, above
/// log(FLT_MAX) +∞, NaN stays NaN), eight at a time with AVX2 and FMA. `y` may be `x`.
void lf_expf(const float *x, float *y, size_t count);

/// The scalar loop of `lf_expf`, always: the same bits (tests compare the two).
void lf_expf_portable(const float *x, float *y, size_t count);

/// Dropout keep flags from Philox blocks first, first+1, … (counter and key as in
/// `lf_philox_blocks`), eight blocks at a time with AVX2: byte 4i+j of `out` is 1 where word j
/// of block i is ≥ `threshold`, else 0. Writes the flags of the first 8·⌊blocks/8⌋ blocks and
/// returns how many blocks it did: 0 without AVX2, where the caller makes them all.
size_t lf_philox_keep(uint32_t first, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                      size_t blocks, uint32_t threshold, uint8_t *out);

/// The OpenMP threads that oneDNN uses when called from this thread.
void lf_set_openmp_threads(int n);

#endif
