// One pass of a GLU layer's activations into its running quadrant totals, on a CPU.
//
// Work is split over torch's own OpenMP threads by vectors of 16 neurons. For each document, a
// vector's tokens are read twice with every accumulator in a vector register and the quadrant
// masks in mask registers. Pass 1 reads the [T, N] activations in place, a token every N floats,
// with a software prefetch some tokens ahead (the hardware prefetchers do not follow a stride
// that crosses a page on every token), and sums each quadrant's tokens and every hook's values;
// it also keeps the vector's values in a contiguous copy, which pass 2 reads from the core's own
// cache (read in place again, a column's addresses would fall into a few cache sets, for N like
// 1536, and miss on every token). Pass 2 finds, for every (quadrant, hook) pair, the value of
// largest |value| (negative first, then the first position: the order of reduction.max_key) and
// its position. The totals are added to the float64 sums and int64 counts. A maximum that
// reaches its list's k-th score (one vector compare turns most away once the lists are full)
// waits with those of up to `slots` documents (glu_kernel.WAIT_SLOTS), and they enter the list
// together.
//
// Written with AVX-512 intrinsics; where the compiler does not target AVX-512, glu_vectors.h
// defines the same operations over vector extensions (AVX2, NEON, SSE2), and the few places
// that need a mask's bits (the list insertion, the candidates that enter) have a portable
// version below.
//
// A hook that is a product of two others (hook_post = swish * in, as GLU MLPs compute it) may be
// left out (NULL): then the kernel multiplies, and a quarter less memory is read.

#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "glu_vectors.h"

// Generated from the vocabulary (registry/vocabulary.py) by kernel_header.py:
//   W: neurons per vector register (16 floats); NQ, NH, NP: quadrants, hooks and
//     (quadrant, hook) max pairs;
//   LOAD_TOKEN: v_<h> = hook h's 16 values of token t, read in place (the hooks that
//     --refactor-glu flips times `flip`; the product hook the product of its two factors where
//     `product`), and the quadrant masks in_q_<q>;
//   STORE_COPY / LOAD_COPY: those values of token t into and out of the copy;
//   SUM_DECLARE / SUM_STEP / SUM_STORE(count, sum): per-quadrant count_<q> and sum_<q>_<h>;
//   MAX_DECLARE / MAX_STEP / MAX_STORE(best, at): per-pair key best_<p> and position at_<p>;
//   PRODUCT_HOOK: the index of the hook that may be left out.
// Each accumulator is its own variable, so every one of them stays in a vector register.
#include "glu_kernel_layout.h"

// Pass 3, where a histogram is counted: histogram_vector (needs the layout's macros).
#include "glu_histogram.h"

#ifndef PREFETCH
#define PREFETCH 12  // tokens ahead: 8 to 16 measured alike on a 2-core Xeon
#endif

// The running top-k lists and the waiting room (kernel.py's TopLists, a ctypes.Structure).
typedef struct {
    // the lists, each [NP, N, K]: one column's list is contiguous
    float* score;  // |value|, -1 where absent
    float* value;
    int64_t* doc;
    int64_t* position;
    float* threshold;  // [NP, N]: each list's k-th score, read once per document and vector
    // Candidates wait here, per (pair, vector of neurons), up to `slots` documents of them,
    // and enter their lists together: a list's lines are then fetched once per `slots`
    // documents, not once per document, which early in a run, when most candidates enter,
    // is most of the kernel's memory traffic.
    float* wait_value;  // [NP, V, slots, W]
    int32_t* wait_position;  // [NP, V, slots, W]
    int64_t* wait_doc;  // [NP, V, slots]
    uint16_t* wait_lanes;  // [NP, V, slots]: the lanes that hold a candidate
    int32_t* waiting;  // [NP, V]: slots in use
    int64_t slots;
} TopLists;

// Whether (score, doc) ranks before entry j of a list: larger score, then lower document.
static inline int ranks_before(float score, int64_t doc, const TopLists* top, int64_t at) {
    return score > top->score[at] || (score == top->score[at] && doc < top->doc[at]);
}

// Put one candidate into the sorted list of column (pair, neuron), if it ranks in the top k.
static void offer_scalar(const TopLists* top, int64_t K, int64_t N, int p, int64_t n,
                         float score, float value, int64_t doc, int64_t position) {
    const int64_t base = ((int64_t)p * N + n) * K;
    int64_t j = K - 1;
    if (!ranks_before(score, doc, top, base + j)) return;
    for (; j > 0 && ranks_before(score, doc, top, base + j - 1); --j) {
        const int64_t to = base + j, from = to - 1;
        top->score[to] = top->score[from];
        top->value[to] = top->value[from];
        top->doc[to] = top->doc[from];
        top->position[to] = top->position[from];
    }
    const int64_t at = base + j;
    top->score[at] = score;
    top->value[at] = value;
    top->doc[at] = doc;
    top->position[at] = position;
    top->threshold[(int64_t)p * N + n] = top->score[base + K - 1];
}

#if GLU_AVX512
// Entry j of a 16-entry list becomes x; the entries from j on move down one place (the last
// drops out). Floats are one vector, int64s two (entries 0-7 and 8-15).
static inline void insert16_ps(float* list, int j, float x) {
    const __m512i down = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
    const __m512 old = _mm512_loadu_ps(list);
    const __m512 moved = _mm512_mask_permutexvar_ps(old, (__mmask16)(0xFFFEu << j), down, old);
    _mm512_storeu_ps(list, _mm512_mask_mov_ps(moved, (__mmask16)(1u << j), _mm512_set1_ps(x)));
}

static inline void insert16_epi64(int64_t* list, int j, int64_t x) {
    const __m512i down_lo = _mm512_set_epi64(6, 5, 4, 3, 2, 1, 0, 0);
    const __m512i down_hi = _mm512_set_epi64(14, 13, 12, 11, 10, 9, 8, 7);  // 8: lo's lane 7
    const unsigned moved = 0xFFFEu << j, here = 1u << j;
    const __m512i lo = _mm512_loadu_si512(list), hi = _mm512_loadu_si512(list + 8);
    const __m512i x8 = _mm512_set1_epi64(x);
    __m512i new_lo = _mm512_mask_permutexvar_epi64(lo, (__mmask8)moved, down_lo, lo);
    __m512i new_hi = _mm512_permutex2var_epi64(lo, down_hi, hi);
    new_hi = _mm512_mask_mov_epi64(hi, (__mmask8)(moved >> 8), new_hi);
    _mm512_storeu_si512(list, _mm512_mask_mov_epi64(new_lo, (__mmask8)here, x8));
    _mm512_storeu_si512(list + 8, _mm512_mask_mov_epi64(new_hi, (__mmask8)(here >> 8), x8));
}

// offer_scalar for lists of 16 (the default k) in vector registers, the list at `base`: the
// candidate's place is the number of entries that rank before it.
static void offer16(const TopLists* top, int64_t base, float score, float value, int64_t doc,
                    int64_t position) {
    float* scores = top->score + base;
    int64_t* docs = top->doc + base;
    const __m512 list = _mm512_loadu_ps(scores), s = _mm512_set1_ps(score);
    const __m512i d = _mm512_set1_epi64(doc);
    const unsigned lower_doc = _mm512_cmplt_epi64_mask(_mm512_loadu_si512(docs), d) |
                               (unsigned)_mm512_cmplt_epi64_mask(_mm512_loadu_si512(docs + 8), d)
                                   << 8;
    const unsigned before = _mm512_cmp_ps_mask(list, s, _CMP_GT_OQ) |
                            (_mm512_cmp_ps_mask(list, s, _CMP_EQ_OQ) & lower_doc);
    const int j = __builtin_popcount(before);
    if (j >= 16) return;
    insert16_ps(scores, j, score);
    insert16_ps(top->value + base, j, value);
    insert16_epi64(docs, j, doc);
    insert16_epi64(top->position + base, j, position);
}
#else
// offer_scalar for lists of 16 without branches on the entries, the list at `base`: the
// candidate's place is the number of entries that rank before it, and the entries from there
// on move down one place.
static void offer16(const TopLists* top, int64_t base, float score, float value, int64_t doc,
                    int64_t position) {
    float* scores = top->score + base;
    const int64_t* docs = top->doc + base;
    int j = 0;
    for (int i = 0; i < 16; ++i) j += scores[i] > score || (scores[i] == score && docs[i] < doc);
    if (j >= 16) return;
    const size_t moved = (size_t)(15 - j);
    memmove(scores + j + 1, scores + j, moved * sizeof(float));
    memmove(top->value + base + j + 1, top->value + base + j, moved * sizeof(float));
    memmove(top->doc + base + j + 1, top->doc + base + j, moved * sizeof(int64_t));
    memmove(top->position + base + j + 1, top->position + base + j, moved * sizeof(int64_t));
    scores[j] = score;
    top->value[base + j] = value;
    top->doc[base + j] = doc;
    top->position[base + j] = position;
}

// The lanes (bits) of one (pair, vector)'s maxima that may enter their lists: found (key not
// 0) and of at least the k-th score, as the AVX-512 path's compare.
static inline __mmask16 entering(const int32_t* key, const __m512i bits, const float* threshold,
                                 int width) {
    float score[W];
    _mm512_storeu_si512(score, bits);
    unsigned enter = 0;
    for (int i = 0; i < width; ++i)
        enter |= (unsigned)(key[i] != 0 && fabsf(score[i]) >= threshold[i]) << i;
    return (__mmask16)enter;
}
#endif

// offer_scalar, by offer16 where lists hold 16 (the default k), and the list's k-th score kept.
static void offer(const TopLists* top, int64_t K, int64_t N, int p, int64_t n, float score,
                  float value, int64_t doc, int64_t position) {
    if (K != 16) {
        offer_scalar(top, K, N, p, n, score, value, doc, position);
        return;
    }
    const int64_t base = ((int64_t)p * N + n) * K;
    offer16(top, base, score, value, doc, position);
    top->threshold[(int64_t)p * N + n] = top->score[base + 15];
}

// The waiting candidates of (pair p, vector) enter their lists, or drop out.
static void admit(const TopLists* top, int64_t K, int64_t N, int p, int64_t vector) {
    const int64_t vectors = (N + W - 1) / W, room = (int64_t)p * vectors + vector;
    const int64_t first = room * top->slots, used = top->waiting[room];
    for (int i = 0; i < W && vector * W + i < N; ++i) {
        const int64_t n = vector * W + i;
        for (int64_t slot = first; slot < first + used; ++slot) {
            if (!(top->wait_lanes[slot] >> i & 1)) continue;
            const float value = top->wait_value[slot * W + i];
            offer(top, K, N, p, n, fabsf(value), value, top->wait_doc[slot],
                  top->wait_position[slot * W + i]);
        }
    }
    top->waiting[room] = 0;
}

// The per-document statistics of one vector of neurons, read from `rows` (NH columns of T
// tokens, `stride` floats apart; hook_post NULL where `product`), folded into the running
// totals. `copy` holds NH columns of T + 1 tokens of W floats, 64-byte aligned.
static void fold_vector(const float* const* rows, int64_t stride, int product, float* const* copy,
                        const uint8_t* row_valid, int64_t T, int64_t N, int64_t K, int64_t n0,
                        int width, __m512 flip, int64_t doc, int64_t* counts, double* sums,
                        const TopLists* top) {
    const __mmask16 live = width == W ? (__mmask16)0xFFFF : (__mmask16)((1u << width) - 1);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i zero_i = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    int32_t count[NQ][W];
    float sum[NQ][NH][W];
    {
        SUM_DECLARE
        for (int64_t t = 0; t < T; ++t) {
            if (t + PREFETCH < T && row_valid[t + PREFETCH])  // not past the row, nor padding
                for (int h = 0; h < NH; ++h)
                    if (rows[h])
                        _mm_prefetch((const char*)(rows[h] + (t + PREFETCH) * stride), _MM_HINT_T0);
            if (!row_valid[t]) continue;
            LOAD_TOKEN
            SUM_STEP
            STORE_COPY
        }
        SUM_STORE(count, sum)
    }
    // A value's key orders like (|value|, negative first) as unsigned integers: its float bits
    // rotated left by one (the magnitude's bits, then the sign), plus one so that 0 means "no
    // token yet" (the key of +0.0 is 1). The first position keeps a tie.
    int32_t best[NP][W], best_at[NP][W];
    {
        // keys with their top bit flipped (glu_kernel_layout.h): "no token yet" is INT32_MIN
        const __m512i unset = _mm512_set1_epi32(INT32_MIN);
        const __m512i key_base = _mm512_set1_epi32(INT32_MIN + 1);
        MAX_DECLARE
        // the position as a vector that counts up: broadcast from t in each step, every
        // position update would cost gcc a second instruction
        __m512i here = _mm512_set1_epi32(-1);
        for (int64_t t = 0; t < T; ++t) {
            here = _mm512_add_epi32(here, one);
            if (!row_valid[t]) continue;
            LOAD_COPY
            MAX_STEP
        }
        MAX_STORE(best, best_at)
    }
    for (int q = 0; q < NQ; ++q) {
        for (int i = 0; i < width; ++i) counts[q * N + n0 + i] += count[q][i];
        for (int h = 0; h < NH; ++h) {
            double* out = sums + ((int64_t)q * NH + h) * N + n0;
            for (int i = 0; i < width; ++i) out[i] += (double)sum[q][h][i];
        }
    }
    // Candidates that may enter their lists (at least the k-th score) take a waiting slot.
    const int64_t vector = n0 / W, vectors = (N + W - 1) / W;
    for (int p = 0; p < NP; ++p) {
        const __m512i key = _mm512_loadu_si512(best[p]);
        const __m512i bits = _mm512_ror_epi32(_mm512_sub_epi32(key, one), 1);
#if GLU_AVX512
        const __mmask16 found = _mm512_mask_test_epi32_mask(live, key, key);
        const __m512 score = _mm512_abs_ps(_mm512_castsi512_ps(bits));
        const __m512 kth = _mm512_maskz_loadu_ps(live, top->threshold + (int64_t)p * N + n0);
        const __mmask16 enter = _mm512_mask_cmp_ps_mask(found, score, kth, _CMP_GE_OQ);
#else
        const float* kth = top->threshold + (int64_t)p * N + n0;
        const __mmask16 enter = entering(best[p], bits, kth, width);
#endif
        if (!enter) continue;
        const int64_t room = (int64_t)p * vectors + vector;
        if (top->waiting[room] == top->slots) admit(top, K, N, p, vector);
        const int64_t slot = room * top->slots + top->waiting[room]++;
        _mm512_storeu_si512(top->wait_value + slot * W, bits);
        _mm512_storeu_si512(top->wait_position + slot * W, _mm512_loadu_si512(best_at[p]));
        top->wait_doc[slot] = doc;
        top->wait_lanes[slot] = enter;
    }
}

// One batch of a layer (kernel.py's Batch) and the running totals it adds to.
typedef struct {
    const float* hooks[NH];  // each [B, T, N] contiguous float32; PRODUCT_HOOK's may be NULL
    const uint8_t* valid;  // [B, T]: 0 for padding
    const int64_t* docs;  // [B]: corpus index of each row
    const float* sign;  // [N] of +-1 (--refactor-glu), or NULL
    int64_t B, T, N, K;
    int64_t* counts;  // [NQ, N]
    double* sums;  // [NQ, NH, N]
    int64_t* histogram;  // [NG, NB, N], or NULL: no histogram
} Batch;

// Returns 0, or -1 when the copy buffers could not be allocated (then nothing was changed).
int glu_fold_batch(const Batch* batch, const TopLists* top) {
    const int64_t B = batch->B, T = batch->T, N = batch->N, K = batch->K;
    const int product = batch->hooks[PRODUCT_HOOK] == NULL;  // then the kernel multiplies
    const int64_t vectors = (N + W - 1) / W;
    // columns a token longer than T: a power of two apart, they would share cache sets
    const int64_t column = (T + 1) * W;
    // one copy buffer per thread, all allocated before anything is changed
    const int threads = omp_get_max_threads();
    float** buffers = calloc((size_t)threads, sizeof(float*));
    int missing = buffers == NULL;
    for (int i = 0; i < threads && !missing; ++i) {
        buffers[i] = aligned_alloc(64, (size_t)NH * column * sizeof(float));
        missing = buffers[i] == NULL;
    }
    // and one histogram's counters per thread ([NG, NB, W] int32), where counted
    int64_t* histogram = batch->histogram;
    const size_t local_bytes = (size_t)NG * NB * W * sizeof(int32_t);
    int32_t** locals = histogram ? calloc((size_t)threads, sizeof(int32_t*)) : NULL;
    missing = missing || (histogram && locals == NULL);
    for (int i = 0; i < threads && !missing && histogram; ++i) {
        locals[i] = malloc(local_bytes);
        missing = locals[i] == NULL;
    }
    if (missing) {
        for (int i = 0; buffers && i < threads; ++i) free(buffers[i]);
        for (int i = 0; locals && i < threads; ++i) free(locals[i]);
        free(buffers);
        free(locals);
        return -1;
    }
#pragma omp parallel num_threads(threads)
    {
        float* buffer = buffers[omp_get_thread_num()];
        int32_t* local = histogram ? locals[omp_get_thread_num()] : NULL;
        float* copy[NH];
        for (int h = 0; h < NH; ++h) copy[h] = buffer + h * column;
#pragma omp for schedule(static)
        for (int64_t v = 0; v < vectors; ++v) {
            const int64_t n0 = v * W;
            const int width = N - n0 < W ? (int)(N - n0) : W;
            const __mmask16 live = (__mmask16)((1u << width) - 1);
            const __m512 flip = batch->sign ? _mm512_maskz_loadu_ps(live, batch->sign + n0)
                                            : _mm512_set1_ps(1.0f);
            if (local) memset(local, 0, local_bytes);
            for (int64_t b = 0; b < B; ++b) {
                const float* rows[NH];
                for (int h = 0; h < NH; ++h)
                    rows[h] = batch->hooks[h] ? batch->hooks[h] + b * T * N + n0 : NULL;
                fold_vector(rows, N, product, copy, batch->valid + b * T, T, N, K, n0, width,
                            flip, batch->docs[b], batch->counts, batch->sums, top);
                if (local) histogram_vector(copy, batch->valid + b * T, T, local);
            }
            // into the layer's histogram, cell by cell: only the cells some token reached (a
            // neuron's values fall in a few of its groups' bins), so that the others' lines of
            // the [NG, NB, N] int64 counts, most of them, are neither read nor written
            for (int64_t c = 0; local && c < NG * NB; ++c) {
                const int32_t* cell = local + c * W;
                int32_t reached = 0;
                for (int i = 0; i < W; ++i) reached |= cell[i];
                if (!reached) continue;
                for (int i = 0; i < width; ++i) histogram[c * N + n0 + i] += cell[i];
            }
        }
    }
    for (int i = 0; i < threads; ++i) free(buffers[i]);
    for (int i = 0; locals && i < threads; ++i) free(locals[i]);
    free(buffers);
    free(locals);
    return 0;
}

// The vectors this build uses: "avx512", "avx2", "neon", "sse2" or "generic".
const char* glu_isa(void) { return GLU_ISA; }

// Every waiting candidate enters its list, or drops out: before the lists are read.
void glu_admit_all(int64_t N, int64_t K, const TopLists* top) {
    const int64_t vectors = (N + W - 1) / W;
#pragma omp parallel for schedule(static)
    for (int64_t room = 0; room < NP * vectors; ++room) {
        if (top->waiting[room]) admit(top, K, N, (int)(room / vectors), room % vectors);
    }
}
