"""FPD, KPD and the classifier two-sample test against analytic values and slow references."""

from __future__ import annotations

import numpy as np
import pytest

from jetfm.metrics.distances import fpd, frechet_distance, kpd, mmd_poly_unbiased
from jetfm.metrics.two_sample import classifier_two_sample_auc


def test_frechet_distance_of_gaussians_analytic() -> None:
    # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2; diagonal covariances add per dimension
    one_d = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.zeros(1), np.array([[1.0]]))
    assert one_d == pytest.approx(1.0 + 1.0)
    s1, s2 = np.diag([1.0, 9.0]), np.diag([4.0, 1.0])
    expected = 0.25 + (1 - 2) ** 2 + (3 - 1) ** 2
    assert frechet_distance(np.array([0.5, 0]), s1, np.zeros(2), s2) == pytest.approx(expected)


def test_fpd_recovers_mean_shift_and_vanishes_for_same_distribution() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6000, 3))
    gen_same = rng.normal(size=(6000, 3))
    gen_shift = rng.normal(size=(6000, 3)) + np.array([1.0, 0.0, 0.0])
    kwargs = dict(min_samples=1000, max_samples=5000, n_batches=5, normalise=False, seed=1)
    shifted = fpd(ref, gen_shift, **kwargs)
    assert shifted.value == pytest.approx(1.0, abs=0.1)
    same = fpd(ref, gen_same, **kwargs)
    assert same.value < 0.01
    assert fpd(ref, gen_shift, **kwargs) == shifted  # seeded


def _mmd_slow(x: np.ndarray, y: np.ndarray, degree: int) -> float:
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / d + 1.0) ** degree

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("degree", [3, 4])
def test_mmd_equals_slow_double_loop(degree: int) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(25, 4)), rng.normal(0.3, 1.0, size=(18, 4))
    assert mmd_poly_unbiased(x, y, degree) == pytest.approx(_mmd_slow(x, y, degree), rel=1e-10)


def test_kpd_zero_for_same_distribution_positive_for_different() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(2000, 4))
    same = kpd(ref, rng.normal(size=(2000, 4)), batch_size=500, seed=4)
    assert abs(same.value) < 3 * same.error + 1e-4
    gen = rng.normal(0.5, 1.0, size=(2000, 4))
    shifted = kpd(ref, gen, batch_size=500, seed=4)
    assert shifted.value > 5 * shifted.error > 0
    assert kpd(ref, gen, batch_size=500, seed=4) == shifted
    assert kpd(ref, gen, batch_size=500, seed=5) != shifted


def test_classifier_two_sample_auc() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(1500, 3))
    same = classifier_two_sample_auc(ref, rng.normal(size=(1500, 3)), n_bootstrap=50, seed=0)
    assert abs(same.value - 0.5) < 4 * same.error
    shifted_gen = rng.normal(size=(1500, 3)) + np.array([2.0, 0.0, 0.0])
    different = classifier_two_sample_auc(ref, shifted_gen, n_bootstrap=50, seed=0)
    assert different.value > 0.8
    assert different == classifier_two_sample_auc(ref, shifted_gen, n_bootstrap=50, seed=0)
