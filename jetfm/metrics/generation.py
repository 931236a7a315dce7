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
    and the generated atoms (values holding at least 1 / ``n_bins`` of the generated sample)
    are edges e_0 < ... < e_k, and each edge value is a bin of its own; the open intervals
    between them, below e_0 and above e_k are the other bins (2k + 3 bins). So every value
    either sample piles up on (a constant sample, a tied or capped observable, a generator
    collapsed onto one value; any reference value of probability >= 1 / ``n_bins`` is a
    quantile) has its own bin, a continuous reference gets ``n_bins`` equal-probability bins,
    and generated values outside the reference range fall in the under- or overflow bin,
    penalised instead of ignored.
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


@dataclass(frozen=True)
class Estimate:
    """A metric value with its (bootstrap or fit) standard uncertainty."""

    value: float
    error: float

    def __str__(self) -> str:
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


def kl_bin_counts(
    generated: np.ndarray, reference: np.ndarray, n_bins: int = DEFAULT_KL_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``generated`` and ``reference`` in the shared KL bins of the module
    docstring (one bin per distinct value for integer-valued samples, else reference quantiles
    and generated atoms as bins of their own between open intervals); each (n_bins_used,)."""
    generated = finite_sample(generated, "generated")
    reference = finite_sample(reference, "reference")
    both = np.concatenate([generated, reference])
    if np.all(both == np.round(both)):
        _, index = np.unique(both, return_inverse=True)
        size = int(index.max()) + 1
    else:
        values, counts = np.unique(generated, return_counts=True)
        atoms = values[counts * n_bins >= len(generated)]  # integer comparison, no rounding
        edges = np.union1d(quantile_bins(reference, n_bins), atoms)
        index, size = bin_index(both, edges), 2 * len(edges) + 1
    return (np.bincount(index[: len(generated)], minlength=size),
            np.bincount(index[len(generated) :], minlength=size))


def kl_divergence(
    generated: np.ndarray,
    reference: np.ndarray,
    n_bins: int = DEFAULT_KL_BINS,
    eps: float = KL_EPSILON,
) -> float:
    """KL(P_generated || Q_reference) of 1-D samples (n,) in nats, on the bins of
    :func:`kl_bin_counts`: integer-valued samples get one bin per distinct value, other
    samples reference-quantile bins whose edge values (and generated atoms) are bins of their
    own (module docstring).
    ``eps`` is added to both normalised histograms. Raises ``ValueError`` for samples that are
    empty, not 1-D or not finite."""
    p, q = kl_bin_counts(generated, reference, n_bins)
    return float(entropy(p / p.sum() + eps, q / q.sum() + eps))


def wasserstein1(generated: np.ndarray, reference: np.ndarray) -> float:
    """Wasserstein-1 distance of two 1-D samples (n,) (unit of the observable); inputs as
    :func:`kl_divergence`."""
    return float(wasserstein_distance(finite_sample(generated, "generated"),
                                      finite_sample(reference, "reference")))


Metric = Callable[[Any, Any], float]


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
    along that axis. ``n_bootstrap = 0`` gives error NaN.
    """
    value = metric(generated, reference)
    if n_bootstrap == 0:
        return Estimate(value, float("nan"))
    rng = np.random.default_rng(seed)
    n_gen, n_ref = len(generated), len(reference)
    replicas = [
        metric(generated[rng.integers(0, n_gen, n_gen)], reference[rng.integers(0, n_ref, n_ref)])
        for _ in range(n_bootstrap)
    ]
    return Estimate(value, float(np.std(replicas, ddof=1)) if n_bootstrap > 1 else float("nan"))


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
