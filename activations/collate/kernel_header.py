"""The collation kernel's layout, as C macros generated from the vocabulary: quadrants, hooks,
(quadrant, hook) max pairs, which hooks --refactor-glu flips and which hook is a product, and
the value histogram's bins and groups.

`python -m activations.collate.kernel_header` rewrites glu_kernel_layout.h, which is committed so
that the kernel reads on its own; a test checks that it is current.
"""

from __future__ import annotations

from pathlib import Path

from activations.records.schema import GLU_LAYOUT
from registry.vocabulary import (
    GATE_HOOK,
    HISTOGRAM_BINS,
    HISTOGRAM_HOOK,
    HISTOGRAM_MAGNITUDES,
    HISTOGRAM_MIN_EXPONENT,
    HISTOGRAM_ZERO_BIN,
    IN_HOOK,
    QUADRANT_SIGNS,
    REFACTOR_FLIPPED_HOOKS,
    SITE_BY_HOOK,
)

HEADER = Path(__file__).with_name("glu_kernel_layout.h")
VECTOR = 16  # neurons per vector register (W): 512 bits of float32


def product_hook() -> str:
    """The hook that the kernel may compute as the product of two others instead of reading
    it (the last such one of the layout); a product needs its factors loaded before it."""
    hooks = GLU_LAYOUT.hooks
    products = [
        h
        for h in hooks
        if SITE_BY_HOOK[h].product_of
        and all(hooks.index(f) < hooks.index(h) for f in SITE_BY_HOOK[h].product_of)
    ]
    if not products:
        raise ValueError("the kernel needs one hook that is a product of two hooks before it")
    return products[-1]


def layout_header() -> str:
    """The GLU layout as C macros, from schema.py: one place for quadrants, hooks and pairs.

    Every accumulator is a variable of its own (count_<q>, sum_<q>_<h>, best_<p>, at_<p>), which
    gcc keeps in a register; arrays of vectors it would keep in memory.
    """
    hooks, quadrants, pairs = GLU_LAYOUT.hooks, GLU_LAYOUT.quadrants, GLU_LAYOUT.max_pairs()
    gate, in_ = hooks.index(GATE_HOOK), hooks.index(IN_HOOK)
    sign_mask = {(0, 1): "g_pos", (0, -1): "g_neg", (1, 1): "u_pos", (1, -1): "u_neg"}
    product = product_hook()
    # pass 1 reads the activations in place (a token every `stride` floats), flips what
    # --refactor-glu flips, multiplies the product hook where it is not read and keeps the
    # results in `copy`; pass 2 reads that copy as it is
    load, load_copy, store = [], [], []
    for h, name in enumerate(hooks):
        value = f"_mm512_maskz_loadu_ps(live, rows[{h}] + t * stride)"
        if name in REFACTOR_FLIPPED_HOOKS:
            value = f"_mm512_mul_ps({value}, flip)"
        factors = SITE_BY_HOOK[name].product_of
        if name == product and factors:  # without its tensor, the product of its (flipped)
            # factors, which come before it
            a, b = (hooks.index(f) for f in factors)
            value = f"product ? _mm512_mul_ps(v_{a}, v_{b}) : {value}"
        load.append(f"const __m512 v_{h} = {value};")
        load_copy.append(f"const __m512 v_{h} = _mm512_load_ps(copy[{h}] + t * W);")
        store.append(f"_mm512_store_ps(copy[{h}] + t * W, v_{h});")
    masks = []
    for which, h in ((0, gate), (1, in_)):
        for sign, cmp in ((1, "_CMP_GT_OQ"), (-1, "_CMP_LT_OQ")):
            masks.append(
                f"const lanes16 {sign_mask[which, sign]} = _mm512_cmp_ps_mask(v_{h}, zero, {cmp});"
            )
    for q, name in enumerate(quadrants):
        gate_sign, in_sign = QUADRANT_SIGNS[name]
        masks.append(
            f"const lanes16 in_q_{q} = "
            f"_kand_mask16({sign_mask[0, gate_sign]}, {sign_mask[1, in_sign]});"
        )
    counted = [(q, h) for q in range(len(quadrants)) for h in range(len(hooks))]
    sum_declare = [f"__m512i count_{q} = zero_i;" for q in range(len(quadrants))]
    sum_declare += [f"__m512 sum_{q}_{h} = zero;" for q, h in counted]
    sum_step = [
        f"count_{q} = _mm512_mask_add_epi32(count_{q}, in_q_{q}, count_{q}, one);"
        for q in range(len(quadrants))
    ]
    sum_step += [
        f"sum_{q}_{h} = _mm512_mask_add_ps(sum_{q}_{h}, in_q_{q}, sum_{q}_{h}, v_{h});"
        for q, h in counted
    ]
    sum_store = [f"_mm512_storeu_si512(count[{q}], count_{q});" for q in range(len(quadrants))]
    sum_store += [f"_mm512_storeu_ps(sum[{q}][{h}], sum_{q}_{h});" for q, h in counted]
    pair_index = [(quadrants.index(q), hooks.index(h)) for q, h in pairs]
    keyed = sorted({h for _, h in pair_index})
    # The keys run with their top bit flipped (key + 2^31, wrapping), so that their unsigned
    # order is the signed order of what the loop holds: a signed compare, which AVX2 has (it
    # has no unsigned one), and no flip of the running maxima per pair and token. The flip
    # rides on the key's "+ 1" (`key_base`, INT32_MIN + 1) and comes off as they are stored.
    max_declare = [
        f"__m512i best_{p} = unset, at_{p} = _mm512_set1_epi32(-1);" for p in range(len(pairs))
    ]
    max_step = [
        f"const __m512i key_{h} = "
        f"_mm512_add_epi32(_mm512_rol_epi32(_mm512_castps_si512(v_{h}), 1), key_base);"
        for h in keyed
    ]
    for p, (q, h) in enumerate(pair_index):
        max_step.append(
            f"{{ const lanes16 up = _mm512_mask_cmp_epi32_mask(in_q_{q}, key_{h}, best_{p}, "
            f"_MM_CMPINT_NLE); best_{p} = _mm512_mask_mov_epi32(best_{p}, up, key_{h}); "
            f"at_{p} = _mm512_mask_mov_epi32(at_{p}, up, here); }}"
        )
    max_store = [
        f"_mm512_storeu_si512(best[{p}], _mm512_xor_si512(best_{p}, unset)); "
        f"_mm512_storeu_si512(at[{p}], at_{p});"
        for p in range(len(pairs))
    ]

    # where each lane's counters of its histogram group begin: its quadrant's (by the masks of
    # LOAD_COPY), else those of the tokens in none (group NQ); counters are [group, bin, lane]
    cells = HISTOGRAM_BINS * VECTOR
    group = [f"__m512i group_at = _mm512_set1_epi32({len(quadrants) * cells});"]
    group += [
        f"group_at = _mm512_mask_mov_epi32(group_at, in_q_{q}, _mm512_set1_epi32({q * cells}));"
        for q in range(len(quadrants))
    ]

    def macro(name: str, lines: list[str]) -> str:
        return f"#define {name} " + " \\\n    ".join(lines)

    return "\n".join(
        [
            "// Generated by activations/collate/kernel_header.py from registry/vocabulary.py;",
            "// do not edit (tests/activations/collate/test_kernel.py checks that it is current).",
            f"#define W {VECTOR}",
            f"#define NQ {len(quadrants)}",
            f"#define NH {len(hooks)}",
            f"#define NP {len(pairs)}",
            f"#define PRODUCT_HOOK {hooks.index(product)}",
            f"#define HIST_VALUE v_{hooks.index(HISTOGRAM_HOOK)}",
            f"#define NG {GLU_LAYOUT.histogram_groups()}",
            f"#define NB {HISTOGRAM_BINS}",
            f"#define HIST_ZERO {HISTOGRAM_ZERO_BIN}",
            f"#define HIST_MAGNITUDES {HISTOGRAM_MAGNITUDES}",
            f"#define HIST_EXPONENT_BASE {127 + HISTOGRAM_MIN_EXPONENT - 1}",
            macro("HIST_GROUP_AT", group),
            macro("LOAD_TOKEN", load + masks),
            macro("LOAD_COPY", load_copy + masks),
            macro("STORE_COPY", store),
            macro("SUM_DECLARE", sum_declare),
            macro("SUM_STEP", sum_step),
            macro("SUM_STORE(count, sum)", sum_store),
            macro("MAX_DECLARE", max_declare),
            macro("MAX_STEP", max_step),
            macro("MAX_STORE(best, at)", max_store),
            "",
        ]
    )


if __name__ == "__main__":
    HEADER.write_text(layout_header())
    print(f"wrote {HEADER}")
