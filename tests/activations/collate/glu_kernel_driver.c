// Runs the collation kernel (glu_kernel.c, included whole) over batches read from a file and
// writes the totals and lists: test_kernel_isas.py builds it for several CPUs and compares them.
//
// in:  int64 B, T, N, K, batches, flags (1: hook_post left out, the kernel multiplies;
//      2: sign flips); float sign[N] where flagged; per batch: each hook read, float[B*T*N]
//      in layout order; uint8 valid[B*T]; int64 docs[B]
// out: int64 counts[NQ*N]; double sums[NQ*NH*N]; the lists [NP, N, K]: float score,
//      float value, int64 doc, int64 position; int64 histogram[NG*NB*N]
#include "glu_kernel.c"

#include <stdio.h>

#define SLOTS 8

static void* take(FILE* in, size_t bytes) {
    void* p = malloc(bytes ? bytes : 1);
    if (!p || fread(p, 1, bytes, in) != bytes) exit(2);
    return p;
}

static void* zeros(size_t bytes) {
    void* p = calloc(1, bytes ? bytes : 1);
    if (!p) exit(3);
    return p;
}

int main(int argc, char** argv) {
    if (argc != 3) return 1;
    FILE* in = fopen(argv[1], "rb");
    if (!in) return 1;
    int64_t* head = take(in, 6 * sizeof(int64_t));
    const int64_t B = head[0], T = head[1], N = head[2], K = head[3], batches = head[4];
    const int product = head[5] & 1, flipped = head[5] >> 1 & 1;
    const float* sign = flipped ? take(in, N * sizeof(float)) : NULL;
    const int64_t lists = NP * N * K, vectors = (N + W - 1) / W, lanes = NP * vectors * SLOTS;
    TopLists top = {
        .score = malloc(lists * sizeof(float)),
        .value = zeros(lists * sizeof(float)),
        .doc = zeros(lists * sizeof(int64_t)),
        .position = zeros(lists * sizeof(int64_t)),
        .threshold = malloc(NP * N * sizeof(float)),
        .wait_value = zeros(lanes * W * sizeof(float)),
        .wait_position = zeros(lanes * W * sizeof(int32_t)),
        .wait_doc = zeros(lanes * sizeof(int64_t)),
        .wait_lanes = zeros(lanes * sizeof(uint16_t)),
        .waiting = zeros(NP * vectors * sizeof(int32_t)),
        .slots = SLOTS,
    };
    for (int64_t i = 0; i < lists; ++i) top.score[i] = -1.0f;  // absent
    for (int64_t i = 0; i < NP * N; ++i) top.threshold[i] = -1.0f;
    int64_t* counts = zeros(NQ * N * sizeof(int64_t));
    double* sums = zeros(NQ * NH * N * sizeof(double));
    int64_t* histogram = zeros(NG * NB * N * sizeof(int64_t));
    for (int64_t b = 0; b < batches; ++b) {
        Batch batch = {.sign = sign, .B = B, .T = T, .N = N, .K = K};
        batch.counts = counts;
        batch.sums = sums;
        batch.histogram = histogram;
        for (int h = 0; h < NH; ++h)
            batch.hooks[h] =
                product && h == PRODUCT_HOOK ? NULL : take(in, B * T * N * sizeof(float));
        batch.valid = take(in, B * T);
        batch.docs = take(in, B * sizeof(int64_t));
        if (glu_fold_batch(&batch, &top)) return 4;
        for (int h = 0; h < NH; ++h) free((void*)batch.hooks[h]);
        free((void*)batch.valid);
        free((void*)batch.docs);
    }
    glu_admit_all(N, K, &top);
    FILE* out = fopen(argv[2], "wb");
    if (!out) return 1;
    fwrite(counts, sizeof(int64_t), NQ * N, out);
    fwrite(sums, sizeof(double), NQ * NH * N, out);
    fwrite(top.score, sizeof(float), lists, out);
    fwrite(top.value, sizeof(float), lists, out);
    fwrite(top.doc, sizeof(int64_t), lists, out);
    fwrite(top.position, sizeof(int64_t), lists, out);
    fwrite(histogram, sizeof(int64_t), NG * NB * N, out);
    fclose(out);
    printf("%s\n", glu_isa());
    return 0;
}
