// The value histogram's pass of glu_kernel.c (included by it, after the layout): the counts of
// each neuron's HIST_VALUE per (quadrant, bin), for one document of one vector of neurons.
#ifndef GLU_HISTOGRAM_H
#define GLU_HISTOGRAM_H

// Pass 3, with a histogram: each token of one document adds one, per lane (neuron), to the
// counter of its (group, bin) in `local` ([NG, NB, W] int32: a lane's counters are its own, so
// a vector of tokens never adds twice to one counter). Its group is its quadrant (NQ: none);
// its bin that of HIST_VALUE in the vocabulary's histogram (reduction.histogram_bins): from the
// exponent of |value|, or for a negative value of the float below |value|, so that its bins
// close away from zero, on their lower side as numpy.histogram's do ([-2^(e+1), -2^e)), and
// exact zeros apart. The bins in vectors, over the copy; the 16 adds one by one.
_Static_assert(W == 16, "the histogram's cells are bin * 16 + lane");

static void histogram_vector(float* const* copy, const uint8_t* row_valid, int64_t T,
                             int32_t* local) {
    static const int32_t lanes[W] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const __m512 zero = _mm512_setzero_ps();
    const __m512i zero_i = _mm512_setzero_si512(), lane = _mm512_loadu_si512(lanes);
    const __m512i magnitude_bits = _mm512_set1_epi32(0x7FFFFFFF), one = _mm512_set1_epi32(1);
    const __m512i base = _mm512_set1_epi32(HIST_EXPONENT_BASE);
    const __m512i largest = _mm512_set1_epi32(HIST_MAGNITUDES - 1);
    const __m512i zero_bin = _mm512_set1_epi32(HIST_ZERO);
    for (int64_t t = 0; t < T; ++t) {
        if (!row_valid[t]) continue;
        LOAD_COPY
        HIST_GROUP_AT
        const __m512i bits = _mm512_castps_si512(HIST_VALUE);
        const __m512i magnitude = _mm512_and_si512(bits, magnitude_bits);
        const __m512i negative = _mm512_srai_epi32(bits, 31);  // -1 or 0
        // the exponent of |value|, or of the float below it for a negative value
        const __m512i exponent = _mm512_srli_epi32(_mm512_add_epi32(magnitude, negative), 23);
        __m512i step = _mm512_max_epi32(_mm512_sub_epi32(exponent, base), zero_i);
        step = _mm512_min_epi32(step, largest);
        // zero + 1 + step, or for a negative value zero - 1 - step (x ^ -1 is -1 - x)
        const __m512i signed_step = _mm512_sub_epi32(
            _mm512_xor_si512(_mm512_add_epi32(step, one), negative), negative);
        __m512i bin = _mm512_add_epi32(zero_bin, signed_step);
        bin = _mm512_mask_mov_epi32(bin, _mm512_cmpeq_epi32_mask(magnitude, zero_i), zero_bin);
        const __m512i cell = _mm512_add_epi32(_mm512_slli_epi32(bin, 4), lane);  // bin·W + lane
        int32_t at[W];
        _mm512_storeu_si512(at, _mm512_add_epi32(group_at, cell));
        for (int i = 0; i < W; ++i) ++local[at[i]];
    }
}

#endif
