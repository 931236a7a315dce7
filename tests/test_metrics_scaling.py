"""Power-law fit against exact data and numpy's weighted linear least squares."""

from __future__ import annotations

import numpy as np
import pytest

from jetfm.metrics.scaling import fit_power_law


def test_exact_power_law_is_recovered() -> None:
    sizes = np.array([1e2, 1e3, 1e4, 1e5, 1e6])
    fit = fit_power_law(sizes, 3.0 * sizes**-0.35)
    assert fit.a == pytest.approx(3.0, rel=1e-8)
    assert fit.gamma == pytest.approx(0.35, rel=1e-8)
    assert fit(1e7) == pytest.approx(3.0 * 1e7**-0.35, rel=1e-8)


def test_weighted_fit_equals_numpy_polyfit_in_log_space() -> None:
    rng = np.random.default_rng(0)
    sizes = np.geomspace(1e2, 1e7, 6)
    errors = 0.05 * 2.0 * sizes**-0.3
    values = 2.0 * sizes**-0.3 + rng.normal(0, errors)
    fit = fit_power_law(sizes, values, errors)
    coeffs, cov = np.polyfit(np.log(sizes), np.log(values), 1, w=values / errors, cov="unscaled")
    assert fit.gamma == pytest.approx(-coeffs[0], rel=1e-7)
    assert fit.a == pytest.approx(np.exp(coeffs[1]), rel=1e-7)
    assert fit.gamma_err == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-6)
    lower, upper = fit.band(sizes)
    assert np.all(lower < fit(sizes)) and np.all(fit(sizes) < upper)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_power_law(np.array([1.0, 2.0]), np.array([1.0, 0.5]))
    with pytest.raises(ValueError, match="positive"):
        fit_power_law(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.5]))
