#include "CKernels.h"
#include <immintrin.h>

// Philox4x32-10 (Salmon et al., SC 2011): the same rounds as Kernels' Philox.block, sixteen
// blocks at once.

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

size_t lf_philox_blocks(uint32_t first, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                        size_t blocks, uint32_t *out) {
    // Relaxed atomics: the first calls may come from several Parallel.forEach workers at once.
    static int fast = -1;
    int known = __atomic_load_n(&fast, __ATOMIC_RELAXED);
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f");
        __atomic_store_n(&fast, known, __ATOMIC_RELAXED);
    }
    if (!known) return 0;
    size_t groups = blocks / 16;
    philox_avx512(first, c1, c2, c3, k0, k1, groups, out);
    return 16 * groups;
}
