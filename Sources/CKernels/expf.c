#include "CKernels.h"
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

// e^x in single precision, eight at a time with AVX2 and FMA. Cody–Waite reduction
// x = n·ln2 + r (|r| ≤ ln2/2, ln2 split in two so that n·ln2_hi is exact), Cephes' degree-6
// polynomial for e^r, then 2^n as two power-of-two factors (so n = -126…128 needs no special
// case). Within 2 ulp of e^x over the whole range (tested against Double). The scalar loop
// below makes the same IEEE operations in the same order, so every element gets the same bits
// whichever path (and whatever tail) computed it.
#pragma STDC FP_CONTRACT OFF

#define EXP_HI 88.7228394f          // above: +∞ (log of FLT_MAX)
#define EXP_LO (-87.3365479f)       // below: 0 (log of FLT_MIN; subnormal results are flushed)
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f

static inline float pow2i(int32_t n) {
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float exp_scalar(float x) {
    if (x != x) return x;
    if (x > EXP_HI) return INFINITY;
    if (x < EXP_LO) return 0.0f;
    float n = rintf(x * LOG2E);
    float r = fmaf(n, -LN2_HI, x);
    r = fmaf(n, -LN2_LO, r);
    float p = P0;
    p = fmaf(p, r, P1);
    p = fmaf(p, r, P2);
    p = fmaf(p, r, P3);
    p = fmaf(p, r, P4);
    p = fmaf(p, r, P5);
    float r2 = r * r;
    float y = fmaf(p, r2, r) + 1.0f;
    int32_t k = (int32_t)n, half = k >> 1;
    return (y * pow2i(half)) * pow2i(k - half);
}

__attribute__((target("avx2,fma")))
static size_t exp_avx2(const float *x, float *y, size_t count) {
    const __m256 hi = _mm256_set1_ps(EXP_HI), lo = _mm256_set1_ps(EXP_LO);
    const __m256i bias = _mm256_set1_epi32(127);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 over = _mm256_cmp_ps(v, hi, _CMP_GT_OQ), under = _mm256_cmp_ps(v, lo, _CMP_LT_OQ);
        __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), v);
        r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
        __m256 p = _mm256_set1_ps(P0);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
        __m256 r2 = _mm256_mul_ps(r, r);
        __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
        __m256i k = _mm256_cvtps_epi32(n), half = _mm256_srai_epi32(k, 1);
        __m256 a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
        __m256 b = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(k, half), bias), 23));
        e = _mm256_mul_ps(_mm256_mul_ps(e, a), b);
        e = _mm256_blendv_ps(e, _mm256_set1_ps(INFINITY), over);
        e = _mm256_blendv_ps(e, _mm256_setzero_ps(), under);
        // NaN in, NaN out: the arithmetic above carries it (neither mask is set).
        _mm256_storeu_ps(y + i, e);
    }
    return i;
}

void lf_expf(const float *x, float *y, size_t count) {
    static int fast = -1;
    int known = __atomic_load_n(&fast, __ATOMIC_RELAXED);
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&fast, known, __ATOMIC_RELAXED);
    }
    size_t i = known ? exp_avx2(x, y, count) : 0;
    for (; i < count; i++) y[i] = exp_scalar(x[i]);
}

void lf_expf_portable(const float *x, float *y, size_t count) {
    for (size_t i = 0; i < count; i++) y[i] = exp_scalar(x[i]);
}
