#include "CKernels.h"
#include <immintrin.h>

// Philox4x32-10 (Salmon et al., SC 2011): the same rounds as Kernels' Philox.block, sixteen
// blocks at once with AVX-512F, eight with AVX2.

// The high 32 bits of the 32×32 products of every lane with m.
__attribute__((target("avx512f")))
static inline __m512i mulhi_epu32(__m512i a, __m512i m) {
    __m512i even = _mm512_srli_epi64(_mm512_mul_epu32(a, m), 32);
    __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    return _mm512_mask_blend_epi32((__mmask16)0xAAAA, even, odd);
}

__attribute__((target("avx512f")))
static void philox_avx512(uint32_t first, uint32_t c1s, uint32_t c2s, uint32_t c3s, uint32_t k0s, uint32_t k1s,
                          size_t groups, uint32_t *out) {
    const __m512i m0 = _mm512_set1_epi32((int)0xD2511F53u), m1 = _mm512_set1_epi32((int)0xCD9E8D57u);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Block i's four words go to out[4i…4i+3]: gather-free, by transposing 16×4 through scatter indices.
    const __m512i index = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(4));
    for (size_t g = 0; g < groups; g++) {
        __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32((int)(first + (uint32_t)(16 * g))), lanes);
        __m512i c1 = _mm512_set1_epi32((int)c1s), c2 = _mm512_set1_epi32((int)c2s), c3 = _mm512_set1_epi32((int)c3s);
        uint32_t k0 = k0s, k1 = k1s;
        for (int round = 0; round < 10; round++) {
            __m512i hi0 = mulhi_epu32(c0, m0), lo0 = _mm512_mullo_epi32(c0, m0);
            __m512i hi1 = mulhi_epu32(c2, m1), lo1 = _mm512_mullo_epi32(c2, m1);
            __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32((int)k0));
            __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32((int)k1));
            c1 = lo1;
            c3 = lo0;
            c0 = n0;
            c2 = n2;
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint32_t *base = out + 64 * g;
        _mm512_i32scatter_epi32(base, index, c0, 4);
        _mm512_i32scatter_epi32(base + 1, index, c1, 4);
        _mm512_i32scatter_epi32(base + 2, index, c2, 4);
        _mm512_i32scatter_epi32(base + 3, index, c3, 4);
    }
}

// The high 32 bits of the 32×32 products of every lane with m.
__attribute__((target("avx2")))
static inline __m256i mulhi_epu32_avx2(__m256i a, __m256i m) {
    __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(a, m), 32);
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    return _mm256_blend_epi32(even, odd, 0xAA);
}

// Eight blocks' words, transposed into block order: out[0] holds blocks 0-1, out[1] 2-3,
// out[2] 4-5, out[3] 6-7 (four words each).
__attribute__((target("avx2")))
static inline void philox8_avx2(uint32_t first, uint32_t c1s, uint32_t c2s, uint32_t c3s, uint32_t k0, uint32_t k1,
                                __m256i out[4]) {
    const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)first), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i c1 = _mm256_set1_epi32((int)c1s), c2 = _mm256_set1_epi32((int)c2s), c3 = _mm256_set1_epi32((int)c3s);
    for (int round = 0; round < 10; round++) {
        __m256i hi0 = mulhi_epu32_avx2(c0, m0), lo0 = _mm256_mullo_epi32(c0, m0);
        __m256i hi1 = mulhi_epu32_avx2(c2, m1), lo1 = _mm256_mullo_epi32(c2, m1);
        __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
        __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    // A 4×4 transpose in each 128-bit half (blocks 0-3 low, 4-7 high), then the halves in order.
    __m256i a = _mm256_unpacklo_epi32(c0, c1), b = _mm256_unpackhi_epi32(c0, c1);
    __m256i c = _mm256_unpacklo_epi32(c2, c3), d = _mm256_unpackhi_epi32(c2, c3);
    __m256i r0 = _mm256_unpacklo_epi64(a, c), r1 = _mm256_unpackhi_epi64(a, c);   // blocks 0|4, 1|5
    __m256i r2 = _mm256_unpacklo_epi64(b, d), r3 = _mm256_unpackhi_epi64(b, d);   // blocks 2|6, 3|7
    out[0] = _mm256_permute2x128_si256(r0, r1, 0x20);
    out[1] = _mm256_permute2x128_si256(r2, r3, 0x20);
    out[2] = _mm256_permute2x128_si256(r0, r1, 0x31);
    out[3] = _mm256_permute2x128_si256(r2, r3, 0x31);
}

// Eight blocks at a time, for CPUs with AVX2 and without AVX-512F (AMD Zen 2/3, older Intel).
__attribute__((target("avx2")))
static void philox_avx2(uint32_t first, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                        size_t groups, uint32_t *out) {
    for (size_t g = 0; g < groups; g++) {
        __m256i w[4];
        philox8_avx2(first + (uint32_t)(8 * g), c1, c2, c3, k0, k1, w);
        for (int q = 0; q < 4; q++) _mm256_storeu_si256((__m256i *)(out + 32 * g) + q, w[q]);
    }
}

// Keep flags straight from the words: byte 4i+j is 1 where word j of block i is ≥ threshold.
__attribute__((target("avx2")))
static void philox_keep_avx2(uint32_t first, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                             size_t groups, uint32_t threshold, uint8_t *out) {
    // Unsigned w < threshold as a signed comparison of both with the sign bit flipped.
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u), one = _mm256_set1_epi32(1);
    const __m256i limit = _mm256_xor_si256(_mm256_set1_epi32((int)threshold), sign);
    // After the two packs below the 4-byte groups come in the order a0 b0 c0 d0 a1 b1 c1 d1.
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t g = 0; g < groups; g++) {
        __m256i w[4], keep[4];
        philox8_avx2(first + (uint32_t)(8 * g), c1, c2, c3, k0, k1, w);
        for (int q = 0; q < 4; q++) {
            __m256i below = _mm256_cmpgt_epi32(limit, _mm256_xor_si256(w[q], sign));
            keep[q] = _mm256_andnot_si256(below, one);
        }
        __m256i ab = _mm256_packus_epi32(keep[0], keep[1]), cd = _mm256_packus_epi32(keep[2], keep[3]);
        __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), order);
        _mm256_storeu_si256((__m256i *)(out + 32 * g), bytes);
    }
}

int lf_cpu_has_avx2(void) {
    static int known = -1;
    int value = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx2");
        __atomic_store_n(&known, value, __ATOMIC_RELAXED);
    }
    return value;
}

size_t lf_philox_blocks(uint32_t first, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                        size_t blocks, uint32_t *out) {
    // Relaxed atomics: the first calls may come from several Parallel.forEach workers at once.
    // 2: AVX-512F, 1: AVX2, 0: neither.
    static int isa = -1;
    int known = __atomic_load_n(&isa, __ATOMIC_RELAXED);
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&isa, known, __ATOMIC_RELAXED);
    }
    if (known == 2) {
        size_t groups = blocks / 16;
        philox_avx512(first, c1, c2, c3, k0, k1, groups, out);
        return 16 * groups;
    }
    if (known == 1) {
        size_t groups = blocks / 8;
        philox_avx2(first, c1, c2, c3, k0, k1, groups, out);
        return 8 * groups;
    }
    return 0;
}

size_t lf_philox_keep(uint32_t first, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                      size_t blocks, uint32_t threshold, uint8_t *out) {
    if (!lf_cpu_has_avx2()) return 0;
    size_t groups = blocks / 8;
    philox_keep_avx2(first, c1, c2, c3, k0, k1, groups, threshold, out);
    return 8 * groups;
}
