"""What kind a neuron is, from its weights alone.

IO classes of gated neurons, from the cosine similarities of its gate, in and out weight vectors
(cos(w_gate, w_in), cos(w_gate, w_out), cos(w_in, w_out)): re-implemented from the description
and code of the GLU "read/write functionalities" work of the GLUScope authors
(github.com/sjgerstner/RW_functionalities, src/weight_analysis_utils/utils.py: `_approx`,
`compute_category`, `COMBO_TO_NAME`, `layerwise_count`). Each cosine is rounded to -1, 0 or 1
(above 0.5: 1; below -0.5: -1; else 0); a neuron's class is the triple (approx cos(in, out),
|approx cos(gate, out)|, typical), typical meaning approx cos(gate, in) equals approx cos(in, out)
× approx cos(gate, out), and counted typical where both cos(in, out) and cos(gate, out) round
to 0 ("orthogonal output"). Plain MLPs have the three classes of approx cos(in, out) alone.
Rule chosen here: a cosine of exactly ±0.5 rounds to 0, as theirs (strict comparisons) does.

Vocabulary families, from the distribution over the vocabulary of the neuron's output direction
through the unembedding (W_U · (norm scale ⊙ w_out)), after the "universal neurons" work
(Gurnee et al. 2024, "Universal Neurons in GPT2 Language Models"): prediction neurons (high
kurtosis, positive skew: they raise a small set of tokens), suppression neurons (high kurtosis,
negative skew: they lower one) and partition neurons (a vocabulary split in two: a flat,
two-humped distribution, low kurtosis). Thresholds chosen here, as the paper draws its families
from plots rather than fixed cut-offs: kurtosis ≥ 10 with skew ≥ 1 (prediction) or ≤ -1
(suppression); kurtosis ≤ 2 (partition; a normal distribution has 3, two equal humps 1).
"""

from __future__ import annotations

import torch

STRENGTHENING, WEAKENING = "strengthening", "weakening"
# (approx cos(in, out), |approx cos(gate, out)|, typical) → class
IO_CLASSES: dict[tuple[int, int, int], str] = {
    (1, 1, 1): STRENGTHENING,
    (1, 1, 0): f"atypical {STRENGTHENING}",
    (1, 0, 1): f"conditional {STRENGTHENING}",
    (1, 0, 0): f"atypical conditional {STRENGTHENING}",
    (0, 1, 1): "proportional change",
    (0, 1, 0): "atypical proportional change",
    (0, 0, 1): "orthogonal output",
    (-1, 1, 1): WEAKENING,
    (-1, 1, 0): f"atypical {WEAKENING}",
    (-1, 0, 1): f"conditional {WEAKENING}",
    (-1, 0, 0): f"atypical conditional {WEAKENING}",
}
PLAIN_CLASSES: dict[int, str] = {1: STRENGTHENING, 0: "orthogonal output", -1: WEAKENING}
CLASS_NAMES: tuple[str, ...] = tuple(IO_CLASSES.values())

THRESHOLD = 0.5
PREDICTION, SUPPRESSION, PARTITION, NO_FAMILY = "prediction", "suppression", "partition", ""
FAMILIES: tuple[str, ...] = (NO_FAMILY, PREDICTION, SUPPRESSION, PARTITION)
HIGH_KURTOSIS, SKEWED, LOW_KURTOSIS = 10.0, 1.0, 2.0


def approx(cosine: torch.Tensor) -> torch.Tensor:
    """-1, 0 or 1: the cosine's sign where its size is over THRESHOLD."""
    rounded = torch.where(cosine > THRESHOLD, 1, 0)
    return torch.where(cosine < -THRESHOLD, -1, rounded)


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row by row cosine similarity of [N, d] matrices (0 for a zero row)."""
    a, b = a.double(), b.double()
    norms = a.norm(dim=1) * b.norm(dim=1)
    dots = (a * b).sum(dim=1)
    return torch.where(norms > 0, dots / torch.where(norms > 0, norms, 1), 0).float()


def io_class_index(
    gate_in: torch.Tensor | None, gate_out: torch.Tensor | None, in_out: torch.Tensor
) -> torch.Tensor:
    """Each neuron's class as an index into CLASS_NAMES (GLU), or into PLAIN_CLASSES's names
    in the order 1, 0, -1 (plain MLPs: gate_in and gate_out None)."""
    linout = approx(in_out)
    if gate_in is None or gate_out is None:
        return torch.tensor([list(PLAIN_CLASSES).index(int(v)) for v in linout], dtype=torch.int8)
    gateout = approx(gate_out)
    typical = (approx(gate_in) == linout * gateout) | ((linout == 0) & (gateout == 0))
    keys = zip(linout.tolist(), gateout.abs().tolist(), typical.int().tolist(), strict=True)
    return torch.tensor([CLASS_NAMES.index(IO_CLASSES[k]) for k in keys], dtype=torch.int8)


def family_index(skew: torch.Tensor, kurtosis: torch.Tensor) -> torch.Tensor:
    """Each neuron's vocabulary family as an index into FAMILIES."""
    family = torch.zeros(skew.shape, dtype=torch.int8)
    high = kurtosis >= HIGH_KURTOSIS
    family[high & (skew >= SKEWED)] = FAMILIES.index(PREDICTION)
    family[high & (skew <= -SKEWED)] = FAMILIES.index(SUPPRESSION)
    family[kurtosis <= LOW_KURTOSIS] = FAMILIES.index(PARTITION)
    return family
