"""1-D generation metrics, seeded bootstrap uncertainties and statistical floors.

* KL divergence as in the AspenOpenJets / OmniJet-alpha transfer study (arXiv:2412.10504):
  KL(P || Q) = sum_x P(x) log(P(x) / Q(x)) with P = generated, Q = reference, from normalised
  histogram counts on bins shared by both samples, evaluated with ``scipy.stats.entropy``.
  Both histograms get :data:`KL_EPSILON` added to every bin before normalisation: a bin empty
  in the reference but holding a fraction f of the generated sample contributes about
  f log(f / KL_EPSILON) (18.4 f nats). Identical samples give exactly 0. The bins
  (:func:`kl_bin_counts`) never put two distinct values of discrete or tied data together:

  - **integer-valued samples** (both; e.g. multiplicities, capped multiplicities): every
    distinct value of either sample is a bin of its own, whatever ``n_bins``;
  - **otherwise**: the ``n_bins`` + 1 reference quantiles (reference values, repeats merged)
    and the atoms of either sample (:func:`atoms`: values genuinely tied in it, i.e. repeated,
    count >= 2, and holding at least 1 / ``n_bins`` of it) are edges e_0 < ... < e_k. Each
    atom is a bin of its own; the intervals between the edges, below e_0 and above e_k are
    the other bins (a non-atom quantile value belongs to the interval above it, the reference
    maximum to the one below). So every value either sample piles up on (a constant sample, a
    tied or capped observable, a generator collapsed onto one value) has its own bin, a
    continuous reference gets ``n_bins`` equal-probability bins, a small continuous generated
    sample (n <= ``n_bins``, all values distinct) is binned like a large one, and generated
    values outside the reference range fall in the under- or overflow bin, penalised instead
    of ignored. Bins empty in both samples are left out.
  - for :func:`bootstrap`, the bins are made once from the full samples
    (:func:`kl_fixed_bins`): a resampling with replacement repeats values, which are not atoms.
* Wasserstein-1 distance (``scipy.stats.wasserstein_distance``), in the unit of the
  observable (GeV for pt and mass).
* :func:`bootstrap`: central value on the full samples, uncertainty = standard deviation of the
  metric over ``n_bootstrap`` resamplings (with replacement, of jets) of both samples, drawn
  from ``numpy.random.default_rng(seed)``: the same seed gives identical numbers.
* Statistical floor: the same metric between two independent reference samples, one of the
  generated sample's size. :func:`floor_split` cuts the reference into a pseudo-generated part
  of that size and the remaining reference; the generated sample is then compared to the same
  remaining reference, so generated-vs-reference and floor are like for like.

Metric functions check their inputs with :func:`jetfm.metrics.inputs.finite_sample` (1-D,
non-empty, finite; ``ValueError`` otherwise): the caller removes and counts NaNs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import entropy, wasserstein_distance

from jetfm.metrics.inputs import finite_sample

KL_EPSILON: float = 1e-8
DEFAULT_KL_BINS: int = 50
Metric = Callable[[Any, Any], float]


@dataclass(frozen=True)
class Estimate:
    """A metric value with its (bootstrap or fit) standard uncertainty; ``note`` says why a
    value or error is undefined (NaN), e.g. "undefined: 3 of 3 jets have < 2 particles"."""

    value: float
    error: float
    note: str = ""

    def __str__(self) -> str:
        why = f" ({self.note})" if self.note else ""
        if not np.isfinite(self.value):
            return f"n/a{why}"
        if not np.isfinite(self.error):
            return f"{self.value:.4g} ± n/a{why}"
        return f"{self.value:.4g} ± {self.error:.2g}"


def quantile_bins(reference: np.ndarray, n_bins: int = DEFAULT_KL_BINS) -> np.ndarray:
    """The ``n_bins`` + 1 quantiles of ``reference`` (reference values), repeats merged.

    Shape (n_edges,) with n_edges <= n_bins + 1, increasing, from min to max of the reference.
    """
    reference = finite_sample(reference, "reference")
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins}")
    edges = np.quantile(reference, np.linspace(0.0, 1.0, n_bins + 1), method="inverted_cdf")
    return np.unique(edges)


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of every value for sorted unique ``edges`` (k values): 2i + 1 for the value
    ``edges[i]`` itself, 2i for the open interval below it, 2k above the last edge; so
    2k + 1 bins, of which the first and last are under- and overflow."""
    below = np.searchsorted(edges, values, side="left")  # number of edges < value
    on_edge = edges[np.minimum(below, len(edges) - 1)] == values
    return 2 * below + on_edge


def atoms(sample: np.ndarray, n_bins: int = DEFAULT_KL_BINS) -> np.ndarray:
    """Values of a 1-D ``sample`` that are genuinely tied: repeated (count >= 2) and holding at
    least 1 / ``n_bins`` of the sample (count * n_bins >= len(sample), integers, no rounding).
    Sorted, shape (n_atoms,). The count >= 2 keeps a small continuous sample (n <= n_bins),
    whose every value holds 1 / n >= 1 / n_bins of it, from being all atoms."""
    values, counts = np.unique(sample, return_counts=True)
    return values[(counts >= 2) & (counts * n_bins >= len(sample))]


@dataclass(frozen=True)
class KLBins:
    """The shared bins of :func:`kl_bin_counts`, made from the full samples by :func:`kl_bins`.

    ``edges`` (k,): sorted breakpoints (reference quantiles and atoms); ``bin_of`` (2k + 1,):
    the bin of each :func:`bin_index` slot (an atom keeps its own slot; a non-atom edge value
    joins the open interval above it, or below it at the reference maximum); ``size``: number
    of bins.
    """

    edges: np.ndarray
    bin_of: np.ndarray
    size: int

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of ``values`` (n,) in the bins, shape (size,)."""
        return np.bincount(self.bin_of[bin_index(values, self.edges)], minlength=self.size)


def kl_bins(
    generated: np.ndarray, reference: np.ndarray, n_bins: int = DEFAULT_KL_BINS
) -> KLBins:
    """The KL bins of the module docstring for two 1-D samples; ``ValueError`` as
    :func:`kl_divergence`."""
    generated = finite_sample(generated, "generated")
    reference = finite_sample(reference, "reference")
    both = np.concatenate([generated, reference])
    if np.all(both == np.round(both)):
        edges = np.unique(both)
        is_atom = np.ones(len(edges), dtype=bool)
    else:
        tied = np.union1d(atoms(generated, n_bins), atoms(reference, n_bins))
        edges = np.union1d(quantile_bins(reference, n_bins), tied)
        is_atom = np.isin(edges, tied)
    slots = np.arange(2 * len(edges) + 1)
    edge_slot = 2 * np.arange(len(edges)) + 1
    lo, hi = reference.min(), reference.max()
    # a non-atom edge is a plain boundary: its value joins the interval above it (the one below
    # it at the reference maximum), so the reference range [lo, hi] has no empty gap
    up = ~is_atom & (edges < hi)
    down = ~is_atom & (edges == hi) & (edges > lo)
    slots[edge_slot[up]] += 1
    slots[edge_slot[down]] -= 1
    _, bin_of = np.unique(slots, return_inverse=True)
    return KLBins(edges, bin_of, int(bin_of.max()) + 1)


def kl_bin_counts(
    generated: np.ndarray,
    reference: np.ndarray,
    n_bins: int = DEFAULT_KL_BINS,
    bins: KLBins | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``generated`` and ``reference`` in the shared KL bins of the module
    docstring (``bins``, default :func:`kl_bins` of these samples), in increasing order of
    value, only the bins holding a value of either sample; each (n_bins_used,)."""
    generated = finite_sample(generated, "generated")
    reference = finite_sample(reference, "reference")
    bins = kl_bins(generated, reference, n_bins) if bins is None else bins
    p, q = bins.counts(generated), bins.counts(reference)
    used = (p > 0) | (q > 0)
    return p[used], q[used]


def kl_divergence(
    generated: np.ndarray,
    reference: np.ndarray,
    n_bins: int = DEFAULT_KL_BINS,
    eps: float = KL_EPSILON,
    bins: KLBins | None = None,
) -> float:
    """KL(P_generated || Q_reference) of 1-D samples (n,) in nats, on the bins of
    :func:`kl_bin_counts` (module docstring); ``bins`` fixes them (:func:`kl_fixed_bins`).
    ``eps`` is added to both normalised histograms. Raises ``ValueError`` for samples that are
    empty, not 1-D or not finite."""
    p, q = kl_bin_counts(generated, reference, n_bins, bins)
    return float(entropy(p / p.sum() + eps, q / q.sum() + eps))


def kl_fixed_bins(
    generated: np.ndarray, reference: np.ndarray, n_bins: int = DEFAULT_KL_BINS
) -> Metric:
    """:func:`kl_divergence` on the bins of these full samples, for :func:`bootstrap`'s
    ``fit``: a resampling with replacement repeats values, which must not turn into atoms of
    their own (an empty reference bin each, 18.4 f nats) in the replicas."""
    bins = kl_bins(generated, reference, n_bins)
    return lambda g, r: kl_divergence(g, r, n_bins, bins=bins)


def wasserstein1(generated: np.ndarray, reference: np.ndarray) -> float:
    """Wasserstein-1 distance of two 1-D samples (n,) (unit of the observable); inputs as
    :func:`kl_divergence`."""
    return float(wasserstein_distance(finite_sample(generated, "generated"),
                                      finite_sample(reference, "reference")))



def bootstrap(
    metric: Metric,
    generated: Any,
    reference: Any,
    n_bootstrap: int = 100,
    seed: int = 0,
) -> Estimate:
    """``metric(generated, reference)`` with its bootstrap standard deviation.

    ``generated`` and ``reference`` are anything indexable along the first axis by an integer
    array (numpy arrays of jets, awkward arrays jets x particles); resampling is of entries
    along that axis. A metric with data-dependent bins must hold them fixed at the full samples
    (:func:`kl_fixed_bins`). Raises ``ValueError`` for ``n_bootstrap`` < 2 (no standard
    deviation; the error would be NaN).
    """
    check_n_bootstrap(n_bootstrap)
    value = metric(generated, reference)
    rng = np.random.default_rng(seed)
    n_gen, n_ref = len(generated), len(reference)
    replicas = [
        metric(generated[rng.integers(0, n_gen, n_gen)], reference[rng.integers(0, n_ref, n_ref)])
        for _ in range(n_bootstrap)
    ]
    return Estimate(value, float(np.std(replicas, ddof=1)))


def check_n_bootstrap(n_bootstrap: int) -> None:
    """``ValueError`` naming ``n_bootstrap`` unless it is an integer >= 2 (a standard deviation
    of the replicas needs two of them)."""
    if isinstance(n_bootstrap, bool) or int(n_bootstrap) != n_bootstrap or n_bootstrap < 2:
        raise ValueError(
            f"n_bootstrap must be an integer >= 2 (the error is the standard deviation of the "
            f"bootstrap replicas), got {n_bootstrap!r}"
        )


@dataclass(frozen=True)
class FloorSplit:
    """Disjoint index sets into the reference sample (see :func:`floor_split`)."""

    pseudo_generated: np.ndarray  # (n_generated,)
    reference: np.ndarray  # (n_reference - n_generated,)


def floor_split(n_reference: int, n_generated: int, seed: int = 0) -> FloorSplit | None:
    """Random split of the reference into a pseudo-generated sample of ``n_generated`` jets and
    the rest, or ``None`` when the rest would be smaller than ``n_generated``.
    """
    if n_generated < 1 or n_reference - n_generated < n_generated:
        return None
    perm = np.random.default_rng(seed).permutation(n_reference)
    return FloorSplit(np.sort(perm[:n_generated]), np.sort(perm[n_generated:]))
