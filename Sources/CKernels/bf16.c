#include "CKernels.h"
#include <immintrin.h>
#include <string.h>

extern void omp_set_num_threads(int);

int lf_cpu_has_avx512_bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512bf16");
}

void lf_set_openmp_threads(int n) { omp_set_num_threads(n); }

static inline uint16_t bf16_round(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);   // quiet NaN
    if ((bits & 0x7f800000u) == 0) return (uint16_t)((bits >> 16) & 0x8000u);          // subnormal → ±0, as the instruction does
    uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)((bits + rounding) >> 16);
}

__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void convert_avx512(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 lo = _mm512_loadu_ps(src + i), hi = _mm512_loadu_ps(src + i + 16);
        _mm512_storeu_si512((void *)(dst + i), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    for (; i < n; i++) dst[i] = bf16_round(src[i]);
}

// Read and written with relaxed atomics: the choice is made once at start-up, but
// conversions may run on several threads.
static int allowed = 1;

void lf_bf16_use_instructions(int on) { __atomic_store_n(&allowed, on != 0, __ATOMIC_RELAXED); }

void lf_f32_to_bf16_portable(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
}

void lf_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    static int fast = -1;
    int known = __atomic_load_n(&fast, __ATOMIC_RELAXED);
    if (known < 0) { known = lf_cpu_has_avx512_bf16(); __atomic_store_n(&fast, known, __ATOMIC_RELAXED); }
    if (known && __atomic_load_n(&allowed, __ATOMIC_RELAXED)) { convert_avx512(src, dst, n); return; }
    lf_f32_to_bf16_portable(src, dst, n);
}

void lf_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)src[i] << 16;
        memcpy(dst + i, &bits, 4);
    }
}
