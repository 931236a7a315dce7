"""RAMBO (jetfm.physics.rambo): four-momentum conservation, massless momenta, the constant
weight equal to the analytic phase-space volume, and flat three-body phase space (uniform in
the Dalitz plane), with a check that the distribution test can fail."""

import math

import numpy as np
import pytest
from scipy import stats

from jetfm.physics.rambo import beams, minkowski_dot, phase_space_volume, rambo

SQRT_S = 500.0


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_momentum_conservation_and_massless(n):
    p, weight = rambo(3000, n, SQRT_S, rng=n)
    assert p.shape == (3000, n, 4) and p.dtype == np.float64
    total = p.sum(axis=1)
    np.testing.assert_allclose(total[:, 0], SQRT_S, rtol=1e-11)
    np.testing.assert_allclose(total[:, 1:], 0.0, atol=1e-11 * SQRT_S)
    energy = p[..., 0]
    assert (energy > 0).all()
    # |m^2| = |E^2 - p^2| at float64 rounding (relative 1e-11: the scale factor x = sqrt_s / M
    # of step 2 amplifies the rounding of nearly back-to-back q_i)
    np.testing.assert_allclose(minkowski_dot(p, p), 0.0, atol=1e-11 * SQRT_S ** 2)
    assert weight == phase_space_volume(n, SQRT_S)


def test_weight_is_the_analytic_phase_space_volume():
    """Phi_2 = 1 / (8 pi) and Phi_3 = s / (256 pi^3) (the two- and three-body volumes of
    massless phase space with the (2 pi)^(4-3n) convention)."""
    s = SQRT_S ** 2
    assert phase_space_volume(2, SQRT_S) == pytest.approx(1 / (8 * math.pi), rel=1e-14)
    assert phase_space_volume(3, SQRT_S) == pytest.approx(s / (256 * math.pi ** 3), rel=1e-14)
    # the same volume written as s^(n-2) / (2 (4 pi)^(2n-3) (n-1)! (n-2)!)
    for n in (4, 5, 7):
        other = s ** (n - 2) / (2 * (4 * math.pi) ** (2 * n - 3) * math.factorial(n - 1)
                                * math.factorial(n - 2))
        assert phase_space_volume(n, SQRT_S) == pytest.approx(other, rel=1e-13)


def _dalitz(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map (x1, x2), uniform on the Dalitz triangle x1 + x2 >= 1, x1, x2 <= 1, to (u, v)
    uniform and independent on the unit square: u = x1^2 (the x1 density is 2 x1), v =
    (x2 - (1 - x1)) / x1 (x2 uniform on [1 - x1, 1] at fixed x1)."""
    x1, x2 = x[:, 0], x[:, 1]
    return x1 ** 2, (x2 - (1 - x1)) / x1


def test_three_body_is_flat_in_the_dalitz_plane():
    p, _ = rambo(40_000, 3, SQRT_S, rng=11)
    x = 2 * p[..., 0] / SQRT_S  # energy fractions, sum 2
    np.testing.assert_allclose(x.sum(axis=1), 2.0, rtol=1e-13)
    u, v = _dalitz(x)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.kstest(v, "uniform").pvalue > 1e-3
    counts, _, _ = np.histogram2d(u, v, bins=8, range=[[0, 1], [0, 1]])
    assert stats.chisquare(counts.ravel()).pvalue > 1e-3
    # isotropy: the direction of particle 0
    cos_theta = p[:, 0, 3] / p[:, 0, 0]
    assert stats.kstest(cos_theta, stats.uniform(-1, 2).cdf).pvalue > 1e-3


def test_dalitz_check_can_fail():
    """The same statistic rejects a non-flat sample: RAMBO's events reweighted towards soft
    particle 1 (accept with probability 1 - x1) are far from uniform in u."""
    p, _ = rambo(40_000, 3, SQRT_S, rng=12)
    x = 2 * p[..., 0] / SQRT_S
    keep = np.random.default_rng(1).random(len(x)) < 1 - x[:, 0]
    u, _ = _dalitz(x[keep])
    assert stats.kstest(u, "uniform").pvalue < 1e-6
    # and the energy fraction itself is not uniform (its density is 2 x)
    assert stats.kstest(x[:, 0], "uniform").pvalue < 1e-6


def test_seeded_and_bad_input():
    a, _ = rambo(5, 4, SQRT_S, rng=3)
    b, _ = rambo(5, 4, SQRT_S, rng=3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n: 1 must be >= 2"):
        rambo(5, 1, SQRT_S)
    with pytest.raises(ValueError, match="sqrt_s"):
        rambo(5, 3, -1.0)
    with pytest.raises(ValueError, match="n_events"):
        rambo(-1, 3, SQRT_S)
    assert rambo(0, 3, SQRT_S)[0].shape == (0, 3, 4)


def test_beams():
    b = beams(2, SQRT_S)
    np.testing.assert_allclose(b.sum(axis=1), [[SQRT_S, 0, 0, 0]] * 2)
    np.testing.assert_allclose(minkowski_dot(b, b), 0.0)
    assert minkowski_dot(b[:, 0], b[:, 1]) == pytest.approx(SQRT_S ** 2 / 2)


def test_large_n_volume_in_log_space_and_checked_before_drawing():
    """(2 pi)^(4 - 3n), s^(n - 2) and the factorials leave the float64 range for large n: the
    volume comes from its logarithm then, and one outside the float64 range is a ValueError
    raised before any momentum is drawn (it was a bare OverflowError after drawing them)."""
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with pytest.raises(ValueError, match=r"200-particle .* outside the float64 range"):
        rambo(2, 200, 100.0, rng=rng)
    assert rng.bit_generator.state == state  # nothing drawn
    s = SQRT_S ** 2
    for n in (100, 200):
        log_expected = ((n - 2) * math.log(s) - math.log(2) - (2 * n - 3) * math.log(4 * math.pi)
                        - math.lgamma(n) - math.lgamma(n - 1))
        assert math.log(phase_space_volume(n, SQRT_S)) == pytest.approx(log_expected, rel=1e-12)
    p, weight = rambo(2, 200, SQRT_S, rng=1)
    assert p.shape == (2, 200, 4) and weight == phase_space_volume(200, SQRT_S)
    np.testing.assert_allclose(p.sum(axis=1)[:, 0], SQRT_S, rtol=1e-10)


@pytest.mark.parametrize("bad", ["3", 2.7, 3.0, True, None])
def test_counts_must_be_integers(bad):
    """rambo, beams and phase_space_volume take whole numbers only (the message names the
    argument); numpy integers are whole numbers too."""
    for call, name in [(lambda: rambo(bad, 3, SQRT_S), "n_events"),
                       (lambda: rambo(5, bad, SQRT_S), "n"),
                       (lambda: beams(bad, SQRT_S), "n_events"),
                       (lambda: phase_space_volume(bad, SQRT_S), "n")]:
        with pytest.raises(TypeError, match=rf"^{name}: .* is not an integer"):
            call()
    with pytest.raises(ValueError, match="n_events: -1 must be >= 0"):
        beams(-1, SQRT_S)
    assert beams(np.int64(3), SQRT_S).shape == (3, 2, 4)
    assert rambo(np.int32(2), np.int64(4), SQRT_S, rng=1)[0].shape == (2, 4, 4)


def test_minkowski_dot_needs_four_vectors():
    with pytest.raises(ValueError, match=r"four-vectors \(\.\.\., 4\) expected"):
        minkowski_dot(np.ones((2, 3)), np.ones((2, 3)))
