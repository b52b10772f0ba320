// The vector operations of glu_kernel.c: AVX-512 intrinsics where the compiler targets AVX-512
// (F and BW), else the same names over GCC/Clang vector extensions, which the compiler lowers to
// the vectors the target has (AVX2: two 256-bit halves, NEON or SSE2: four 128-bit quarters).
//
// Only the operations that the kernel's common code and its generated layout macros use are
// defined here. The one difference a reader must keep in mind: in the portable path a mask of
// the hot loops (the type `lanes16`: the quadrant masks, the maxima's updates) is a vector of
// int32 lanes, 0 or -1, so that a masked add or move is a select; __mmask16 (the lanes that
// hold neurons, the candidates that enter) stays an integer of 16 bits, as on AVX-512.
#ifndef GLU_VECTORS_H
#define GLU_VECTORS_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define GLU_AVX512 1
#define GLU_ISA "avx512"
typedef __mmask16 lanes16;
#else
#define GLU_AVX512 0
#if defined(__AVX2__)
#define GLU_ISA "avx2"
#elif defined(__ARM_NEON)
#define GLU_ISA "neon"
#elif defined(__SSE2__)
#define GLU_ISA "sse2"
#else
#define GLU_ISA "generic"
#endif
// gcc lowers the arithmetic of a 64-byte vector extension to the target's own vectors, but
// its comparisons lane by lane and its lanes through memory: a 512-bit vector here is a struct
// of parts of the target's width (AVX2: two of 256 bits; else four of 128), each operation a
// loop over them that gcc unrolls.
#ifdef __AVX2__
#define GLU_PART 32
#else
#define GLU_PART 16
#endif
#define GLU_PARTS (64 / GLU_PART)
// bytes, as the blend instructions of glu_select take them (immintrin.h would bring its own
// __m512 along)
typedef char glu_bytes __attribute__((vector_size(GLU_PART)));
typedef float glu_fpart __attribute__((vector_size(GLU_PART)));
typedef int32_t glu_ipart __attribute__((vector_size(GLU_PART)));
typedef uint32_t glu_upart __attribute__((vector_size(GLU_PART)));

typedef struct {
    glu_fpart p[GLU_PARTS];
} __m512;
typedef struct {
    glu_ipart p[GLU_PARTS];
} __m512i;
typedef uint16_t __mmask16;
typedef __m512i lanes16;  // each lane 0 or -1

#define GLU_INLINE static inline __attribute__((always_inline))
#define GLU_EACH for (int i = 0; i < GLU_PARTS; ++i)
#define _MM_HINT_T0 3
#define _mm_prefetch(p, hint) __builtin_prefetch((p), 0, (hint))

GLU_INLINE __m512 _mm512_set1_ps(float x) {
    __m512 r;
    GLU_EACH r.p[i] = (glu_fpart){0} + x;
    return r;
}
GLU_INLINE __m512i _mm512_set1_epi32(int32_t x) {
    __m512i r;
    GLU_EACH r.p[i] = (glu_ipart){0} + x;
    return r;
}
GLU_INLINE __m512 _mm512_setzero_ps(void) { return _mm512_set1_ps(0.0f); }
GLU_INLINE __m512i _mm512_setzero_si512(void) { return _mm512_set1_epi32(0); }
GLU_INLINE __m512i _mm512_castps_si512(__m512 a) {
    __m512i r;
    GLU_EACH r.p[i] = (glu_ipart)a.p[i];
    return r;
}
GLU_INLINE __m512 _mm512_castsi512_ps(__m512i a) {
    __m512 r;
    GLU_EACH r.p[i] = (glu_fpart)a.p[i];
    return r;
}

// integer arithmetic wraps, as the instructions do: computed on unsigned lanes
GLU_INLINE __m512i _mm512_add_epi32(__m512i a, __m512i b) {
    GLU_EACH a.p[i] = (glu_ipart)((glu_upart)a.p[i] + (glu_upart)b.p[i]);
    return a;
}
GLU_INLINE __m512i _mm512_sub_epi32(__m512i a, __m512i b) {
    GLU_EACH a.p[i] = (glu_ipart)((glu_upart)a.p[i] - (glu_upart)b.p[i]);
    return a;
}
GLU_INLINE __m512i _mm512_rol_epi32(__m512i a, int n) {
    GLU_EACH {
        const glu_upart u = (glu_upart)a.p[i];
        a.p[i] = (glu_ipart)(u << n | u >> (32 - n));
    }
    return a;
}
GLU_INLINE __m512i _mm512_ror_epi32(__m512i a, int n) {
    GLU_EACH {
        const glu_upart u = (glu_upart)a.p[i];
        a.p[i] = (glu_ipart)(u >> n | u << (32 - n));
    }
    return a;
}
GLU_INLINE __m512 _mm512_mul_ps(__m512 a, __m512 b) {
    GLU_EACH a.p[i] *= b.p[i];
    return a;
}

// Part by part: one memcpy of the whole struct became 16-byte moves through the stack, and
// reading a 32-byte part back from two 16-byte stores stalls store forwarding (on a Zen 3 they
// were most of the kernel's time); a part's memcpy is one unaligned load or store.
#define GLU_PART_FLOATS (GLU_PART / 4)
GLU_INLINE __m512 _mm512_loadu_ps(const float* p) {
    __m512 v;
    GLU_EACH memcpy(&v.p[i], p + i * GLU_PART_FLOATS, GLU_PART);
    return v;
}
#define _mm512_load_ps _mm512_loadu_ps
GLU_INLINE __m512i _mm512_loadu_si512(const void* p) {
    __m512i v;
    GLU_EACH memcpy(&v.p[i], (const char*)p + i * GLU_PART, GLU_PART);
    return v;
}
GLU_INLINE void _mm512_storeu_ps(float* p, __m512 v) {
    GLU_EACH memcpy(p + i * GLU_PART_FLOATS, &v.p[i], GLU_PART);
}
#define _mm512_store_ps _mm512_storeu_ps
GLU_INLINE void _mm512_storeu_si512(void* p, __m512i v) {
    GLU_EACH memcpy((char*)p + i * GLU_PART, &v.p[i], GLU_PART);
}

// The lanes of `k` (bits) read from p, zero elsewhere; lanes outside `k` are never read (the
// last vector of neurons may end at the end of a tensor).
GLU_INLINE __m512 _mm512_maskz_loadu_ps(__mmask16 k, const float* p) {
    if (k == 0xFFFF) return _mm512_loadu_ps(p);
    float v[16] = {0};
    for (int i = 0; i < 16; ++i)
        if (k >> i & 1) v[i] = p[i];
    return _mm512_loadu_ps(v);
}

// Lane masks (lanes16) of the hot loops.
GLU_INLINE lanes16 _kand_mask16(lanes16 a, lanes16 b) {
    GLU_EACH a.p[i] &= b.p[i];
    return a;
}
// ordered comparisons of floats: false where either is NaN, as _CMP_*_OQ
GLU_INLINE lanes16 glu_cmp_GT(__m512 a, __m512 b) {
    lanes16 r;
    GLU_EACH r.p[i] = a.p[i] > b.p[i];
    return r;
}
GLU_INLINE lanes16 glu_cmp_LT(__m512 a, __m512 b) {
    lanes16 r;
    GLU_EACH r.p[i] = a.p[i] < b.p[i];
    return r;
}
// signed a > b within the lanes of k
GLU_INLINE lanes16 glu_cmp_NLE(lanes16 k, __m512i a, __m512i b) {
    GLU_EACH k.p[i] &= a.p[i] > b.p[i];
    return k;
}
#define _CMP_GT_OQ GT
#define _CMP_LT_OQ LT
#define _MM_CMPINT_NLE NLE
#define glu_compare(a, b, op) glu_cmp_##op(a, b)
#define glu_compare_in(k, a, b, op) glu_cmp_##op(k, a, b)
#define _mm512_cmp_ps_mask(a, b, op) glu_compare((a), (b), op)
#define _mm512_mask_cmp_epi32_mask(k, a, b, op) glu_compare_in((k), (a), (b), op)

// `yes` where k (lanes of 0 or -1), else `no`: one blend where the target has it (gcc turns
// the portable form into three operations, xor, and, xor; the maxima's updates make two
// selects per (quadrant, hook) pair and token)
GLU_INLINE glu_ipart glu_select(glu_ipart k, glu_ipart yes, glu_ipart no) {
#if defined(__AVX2__)
    return (glu_ipart)__builtin_ia32_pblendvb256((glu_bytes)no, (glu_bytes)yes, (glu_bytes)k);
#elif defined(__SSE4_1__)
    return (glu_ipart)__builtin_ia32_pblendvb128((glu_bytes)no, (glu_bytes)yes, (glu_bytes)k);
#else
    return (yes & k) | (no & ~k);
#endif
}
// the integer operations of the value histogram's bins
GLU_INLINE __m512i _mm512_and_si512(__m512i a, __m512i b) {
    GLU_EACH a.p[i] &= b.p[i];
    return a;
}
GLU_INLINE __m512i _mm512_xor_si512(__m512i a, __m512i b) {
    GLU_EACH a.p[i] ^= b.p[i];
    return a;
}
GLU_INLINE __m512i _mm512_srai_epi32(__m512i a, int n) {
    GLU_EACH a.p[i] >>= n;  // arithmetic on signed lanes, as gcc and clang shift them
    return a;
}
GLU_INLINE __m512i _mm512_srli_epi32(__m512i a, int n) {
    GLU_EACH a.p[i] = (glu_ipart)((glu_upart)a.p[i] >> n);
    return a;
}
GLU_INLINE __m512i _mm512_slli_epi32(__m512i a, int n) {
    GLU_EACH a.p[i] = (glu_ipart)((glu_upart)a.p[i] << n);
    return a;
}
GLU_INLINE lanes16 _mm512_cmpeq_epi32_mask(__m512i a, __m512i b) {
    lanes16 r;
    GLU_EACH r.p[i] = a.p[i] == b.p[i];
    return r;
}
GLU_INLINE __m512i _mm512_max_epi32(__m512i a, __m512i b) {
    GLU_EACH a.p[i] = (a.p[i] & (a.p[i] > b.p[i])) | (b.p[i] & ~(a.p[i] > b.p[i]));
    return a;
}
GLU_INLINE __m512i _mm512_min_epi32(__m512i a, __m512i b) {
    GLU_EACH a.p[i] = (a.p[i] & (a.p[i] < b.p[i])) | (b.p[i] & ~(a.p[i] < b.p[i]));
    return a;
}
GLU_INLINE __m512i _mm512_mask_mov_epi32(__m512i src, lanes16 k, __m512i a) {
    GLU_EACH src.p[i] = glu_select(k.p[i], a.p[i], src.p[i]);
    return src;
}
// The kernel's masked adds are running totals, src == a: `a + (b where k, else 0)` is the masked
// add with one AND instead of a select (three operations), which keeps more of the hot loops'
// accumulators in registers. Exact: a float total never is -0.0 (it starts at +0.0, and x + -x
// is +0.0), so adding +0.0 outside k leaves every bit of it as it is.
GLU_INLINE __m512i _mm512_mask_add_epi32(__m512i src, lanes16 k, __m512i a, __m512i b) {
    (void)src;
    GLU_EACH a.p[i] = (glu_ipart)((glu_upart)a.p[i] + (glu_upart)(b.p[i] & k.p[i]));
    return a;
}
GLU_INLINE __m512 _mm512_mask_add_ps(__m512 src, lanes16 k, __m512 a, __m512 b) {
    (void)src;
    GLU_EACH a.p[i] += (glu_fpart)((glu_ipart)b.p[i] & k.p[i]);
    return a;
}
#endif

#endif
