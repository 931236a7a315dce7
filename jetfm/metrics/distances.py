"""Frechet and kernel physics distances (FPD, KPD) of Kansal et al., arXiv:2211.10295.

Defined as in the jetnet library (``jetnet.evaluation.fpd`` / ``kpd``), reimplemented with a
seeded ``numpy.random.Generator``:

* Both feature sets (n_jets, n_features) are divided by the per-feature max |value| of the
  reference ("normalise").
* FPD: the Frechet distance ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) of Gaussians
  fitted to batches drawn with replacement, averaged over ``n_batches`` batches at each of
  ``n_points`` batch sizes N spaced evenly in 1/N, then extrapolated linearly to 1/N -> 0 (fit
  with non-negative intercept and slope); value and error are the intercept and its fit error.
* KPD: unbiased quadratic-time MMD^2 estimate with the polynomial kernel
  k(x, y) = (x . y / n_features + 1)^degree on ``n_batches`` batches of ``batch_size``; value =
  median over batches, error = half the 16-84 % interquantile range. ``degree`` = 4 is what the
  jetnet code uses (the KID convention of computer vision is 3).

Inputs: two finite (n_jets >= 2, n_features) sets with equal feature counts, checked by
:func:`jetfm.metrics.inputs.paired_features` (``ValueError`` naming the set otherwise).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import sqrtm
from scipy.optimize import curve_fit
from scipy.stats import iqr

from jetfm.metrics.generation import Estimate
from jetfm.metrics.inputs import paired_features

KPD_DEGREE: int = 4


def normalise_features(
    reference: np.ndarray, generated: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Divide both by the reference's per-feature max |value| (features that are all 0: by 1)."""
    scale = np.max(np.abs(reference), axis=0)
    scale[scale == 0] = 1.0
    return reference / scale, generated / scale


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Frechet (2-Wasserstein squared) distance of two Gaussians N(mu1, sigma1), N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    covmean = sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # nearly singular product: regularise as jetnet does
        offset = 1e-6 * np.eye(len(sigma1))
        covmean = sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real)


def _gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def fpd(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    min_samples: int = 20_000,
    max_samples: int = 50_000,
    n_batches: int = 20,
    n_points: int = 10,
    normalise: bool = True,
    seed: int = 0,
) -> Estimate:
    """Frechet physics distance of (n_jets, n_features) feature sets, extrapolated to N -> inf.

    jetnet's defaults (20k - 50k) assume >= 50k jets per sample; pass smaller batch sizes for
    smaller samples. Batches are drawn with replacement.
    """
    x, y = paired_features(reference, generated, min_rows=2)
    if normalise:
        x, y = normalise_features(x, y)
    if not 2 <= min_samples <= max_samples:
        raise ValueError(f"need 2 <= min_samples <= max_samples, got {min_samples}, {max_samples}")
    rng = np.random.default_rng(seed)
    sizes = (1.0 / np.linspace(1.0 / min_samples, 1.0 / max_samples, n_points)).astype(np.int64)
    means = []
    for n in sizes:
        values = [
            frechet_distance(
                *_gaussian(x[rng.integers(0, len(x), n)]), *_gaussian(y[rng.integers(0, len(y), n)])
            )
            for _ in range(n_batches)
        ]
        means.append(np.mean(values))
    params, cov = curve_fit(
        lambda inv_n, intercept, slope: intercept + slope * inv_n,
        1.0 / sizes,
        np.asarray(means),
        bounds=([0.0, 0.0], [np.inf, np.inf]),
    )
    return Estimate(float(params[0]), float(np.sqrt(cov[0, 0])))


def _poly_kernel(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """(x_i . y_j / d + 1)^degree, (len(x), len(y)); repeated products (much faster than **)."""
    base = x @ y.T / x.shape[1] + 1.0
    out = base.copy()
    for _ in range(degree - 1):
        out *= base
    return out


def _kernel_sum(x: np.ndarray, y: np.ndarray, degree: int, chunk: int = 1024) -> float:
    """sum_ij (x_i . y_j / d + 1)^degree, in row blocks to bound memory."""
    return float(
        sum(_poly_kernel(x[i : i + chunk], y, degree).sum() for i in range(0, len(x), chunk))
    )


def mmd_poly_unbiased(x: np.ndarray, y: np.ndarray, degree: int = KPD_DEGREE) -> float:
    """Unbiased MMD^2 of samples x (m, d) and y (n, d), kernel (x . y / d + 1)^degree."""
    m, n, d = len(x), len(y), x.shape[1]
    trace_xx = float((((x * x).sum(axis=1) / d + 1.0) ** degree).sum())
    trace_yy = float((((y * y).sum(axis=1) / d + 1.0) ** degree).sum())
    return (
        (_kernel_sum(x, x, degree) - trace_xx) / (m * (m - 1))
        + (_kernel_sum(y, y, degree) - trace_yy) / (n * (n - 1))
        - 2.0 * _kernel_sum(x, y, degree) / (m * n)
    )


def kpd(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    n_batches: int = 10,
    batch_size: int = 5_000,
    degree: int = KPD_DEGREE,
    normalise: bool = True,
    seed: int = 0,
) -> Estimate:
    """Kernel physics distance: median unbiased MMD^2 over batches, error half the 16-84 % IQR."""
    x, y = paired_features(reference, generated, min_rows=2)
    if normalise:
        x, y = normalise_features(x, y)
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")
    rng = np.random.default_rng(seed)
    values = [
        mmd_poly_unbiased(
            x[rng.integers(0, len(x), batch_size)], y[rng.integers(0, len(y), batch_size)], degree
        )
        for _ in range(n_batches)
    ]
    return Estimate(float(np.median(values)), float(iqr(values, rng=(16.275, 83.725)) / 2))
