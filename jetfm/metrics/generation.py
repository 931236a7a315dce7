"""1-D generation metrics, seeded bootstrap uncertainties and statistical floors.

* KL divergence as in the AspenOpenJets / OmniJet-alpha transfer study (arXiv:2412.10504):
  KL(P || Q) = sum_x P(x) log(P(x) / Q(x)) with P = generated, Q = reference, from normalised
  histogram counts, evaluated with ``scipy.stats.entropy``. Bins: ``n_bins`` equal-probability
  bins from the reference quantiles (edges are reference values), plus an underflow and an
  overflow bin outside the reference range, so generated values the reference never reaches
  are penalised instead of ignored. Both histograms get :data:`KL_EPSILON` added to every bin
  before normalisation: a bin empty in the reference but holding a fraction f of the generated
  sample contributes about f log(f / KL_EPSILON). Identical histograms give exactly 0.
* Wasserstein-1 distance (``scipy.stats.wasserstein_distance``), in the unit of the
  observable (GeV for pt and mass).
* :func:`bootstrap`: central value on the full samples, uncertainty = standard deviation of the
  metric over ``n_bootstrap`` resamplings (with replacement, of jets) of both samples, drawn
  from ``numpy.random.default_rng(seed)``: the same seed gives identical numbers.
* Statistical floor: the same metric between two independent reference samples, one of the
  generated sample's size. :func:`floor_split` cuts the reference into a pseudo-generated part
  of that size and the remaining reference; the generated sample is then compared to the same
  remaining reference, so generated-vs-reference and floor are like for like.

Metric functions raise ``ValueError`` on non-finite input: the caller removes and counts NaNs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import entropy, wasserstein_distance

KL_EPSILON: float = 1e-8
DEFAULT_KL_BINS: int = 50


@dataclass(frozen=True)
class Estimate:
    """A metric value with its (bootstrap or fit) standard uncertainty."""

    value: float
    error: float

    def __str__(self) -> str:
        return f"{self.value:.4g} ± {self.error:.2g}"


def _finite_1d(x: Any, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) == 0:
        raise ValueError(f"{name} sample is empty")
    n_bad = int((~np.isfinite(x)).sum())
    if n_bad:
        raise ValueError(f"{name} sample has {n_bad} non-finite of {len(x)} values")
    return x


def quantile_bins(reference: np.ndarray, n_bins: int = DEFAULT_KL_BINS) -> np.ndarray:
    """Edges of up to ``n_bins`` equal-probability bins of ``reference`` (reference values).

    Repeated quantiles (discrete observables such as multiplicity) are merged, so fewer bins
    may come back. Shape (n_edges,), increasing, from min to max of the reference.
    """
    reference = _finite_1d(reference, "reference")
    edges = np.quantile(reference, np.linspace(0.0, 1.0, n_bins + 1), method="inverted_cdf")
    return np.unique(edges)


def binned_fractions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fractions in [underflow, bin_1, ..., bin_k, overflow] for inner ``edges`` (k + 1).

    Inner bins are [e_i, e_i+1), the last one closed; shape (len(edges) + 1,).
    """
    index = np.searchsorted(edges, values, side="right")
    index[values == edges[-1]] = len(edges) - 1
    return np.bincount(index, minlength=len(edges) + 1) / len(values)


def kl_divergence(
    generated: np.ndarray,
    reference: np.ndarray,
    n_bins: int = DEFAULT_KL_BINS,
    eps: float = KL_EPSILON,
) -> float:
    """KL(P_generated || Q_reference) of 1-D samples on reference-quantile bins (nats)."""
    generated = _finite_1d(generated, "generated")
    edges = quantile_bins(reference, n_bins)
    p = binned_fractions(generated, edges)
    q = binned_fractions(_finite_1d(reference, "reference"), edges)
    return float(entropy(p + eps, q + eps))


def wasserstein1(generated: np.ndarray, reference: np.ndarray) -> float:
    """Wasserstein-1 distance of two 1-D samples (unit of the observable)."""
    return float(
        wasserstein_distance(_finite_1d(generated, "generated"), _finite_1d(reference, "reference"))
    )


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
