"""Power-law fits metric(D) = a * D^-gamma for dataset-size scans.

The fit is a weighted least-squares straight line in log space, log m = log a - gamma log D
(``scipy.optimize.curve_fit``). With per-point uncertainties sigma_m the log-space weights are
sigma_m / m and the parameter covariance is absolute; without them the covariance is scaled by
the residual variance (needs at least three points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`; ``cov`` is the covariance of (log a, gamma)."""

    a: float
    gamma: float
    cov: np.ndarray

    @property
    def a_err(self) -> float:
        return float(self.a * np.sqrt(self.cov[0, 0]))

    @property
    def gamma_err(self) -> float:
        return float(np.sqrt(self.cov[1, 1]))

    def __call__(self, size: np.ndarray) -> np.ndarray:
        """Fitted metric at dataset sizes ``size``."""
        return self.a * np.asarray(size, dtype=np.float64) ** -self.gamma

    def band(self, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) 1-sigma band of the fit at ``size`` (propagated in log space)."""
        log_d = np.log(np.asarray(size, dtype=np.float64))
        var = self.cov[0, 0] + log_d**2 * self.cov[1, 1] - 2 * log_d * self.cov[0, 1]
        central = self(size)
        spread = np.exp(np.sqrt(np.maximum(var, 0.0)))
        return central / spread, central * spread

    def __str__(self) -> str:
        return (
            f"({self.a:.3g} ± {self.a_err:.2g}) D^-({self.gamma:.3f} ± {self.gamma_err:.3f})"
        )


def fit_power_law(
    sizes: np.ndarray, values: np.ndarray, errors: np.ndarray | None = None
) -> PowerLawFit:
    """Fit values = a * sizes^-gamma; ``sizes`` and ``values`` positive, all shape (n_points,)."""
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if sizes.shape != values.shape:
        raise ValueError(f"sizes {sizes.shape} and values {values.shape} differ")
    if not (np.all(sizes > 0) and np.all(values > 0)):
        raise ValueError("power-law fit needs positive sizes and metric values")
    min_points = 2 if errors is not None else 3
    if len(sizes) < min_points:
        raise ValueError(f"power-law fit needs at least {min_points} points, got {len(sizes)}")
    sigma = None
    if errors is not None:
        errors = np.asarray(errors, dtype=np.float64).reshape(-1)
        if errors.shape != values.shape or not np.all(errors > 0):
            raise ValueError("errors must be positive with one entry per value")
        sigma = errors / values
    params, cov = curve_fit(
        lambda log_d, log_a, gamma: log_a - gamma * log_d,
        np.log(sizes),
        np.log(values),
        p0=(float(np.log(values[0])), 0.5),
        sigma=sigma,
        absolute_sigma=errors is not None,
    )
    return PowerLawFit(float(np.exp(params[0])), float(params[1]), cov)
