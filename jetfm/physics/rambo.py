"""RAMBO: flat (uniformly weighted) phase space of n massless particles.

R. Kleiss, W. J. Stirling, S. D. Ellis, "A new Monte Carlo treatment of multiparticle phase
space at high energies", Comput. Phys. Commun. 40 (1986) 359 (RAMBO). The algorithm, Sec. 3
of the paper, for n massless momenta of total four-momentum (sqrt_s, 0, 0, 0):

1. n massless momenta q_i, isotropic, with energies from q^0 e^{-q^0} dq^0:
   q_i^0 = -ln(r1 r2), cos(theta) = 2 r3 - 1, phi = 2 pi r4 (r uniform in (0, 1]);
2. Q = sum_i q_i, M = sqrt(Q^2), b = -Q_vec / M, gamma = Q^0 / M, a = 1 / (1 + gamma),
   x = sqrt_s / M;
3. the conformal transformation (boost by b, scale by x):
   p_i^0 = x (gamma q_i^0 + b . q_i),  p_i_vec = x (q_i_vec + b q_i^0 + a (b . q_i) b).

Every event has the same weight, the volume of n-body massless phase space (Eq. 2.5 of the
paper, with dPhi_n = (2 pi)^(4 - 3n) delta^4(P - sum p) prod d^3p_i / (2 E_i), i.e. the
(2 pi)^4 and 1 / (2 pi)^3 per particle of the standard cross-section formula):

    Phi_n(s) = (2 pi)^(4 - 3n) (pi / 2)^(n - 1) s^(n - 2) / ((n - 1)! (n - 2)!),

e.g. Phi_2 = 1 / (8 pi), Phi_3 = s / (256 pi^3). A cut applied afterwards keeps the weights
equal (the accepted events are flat in the accepted region).

A maintained package was looked for on PyPI first: ``phasespace`` (TensorFlow; Raubold-Lynch,
massive decays), ``phasespace-jax`` (JAX port of the same) and ``madevent7`` 0.3.1 (a 30 MB
compiled phase-space mapping library of the MadGraph authors, whose ``FastRamboMapping`` is
RAMBO on diet behind its own function-graph runtime) do not give a flat massless generator on
numpy without a heavy dependency, so the 20 lines above are implemented here, vectorised.

Conventions: four-momenta (E, px, py, pz) in GeV, float64, shape (events, n, 4).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from jetfm.checks import POSITIVE, check_count, number

_TINY = sys.float_info.min  # smallest normal float64
_LOG_TINY, _LOG_HUGE = math.log(sys.float_info.min), math.log(sys.float_info.max)


def phase_space_volume(n: int, sqrt_s: float) -> float:
    """Volume Phi_n [GeV^(2n - 4)] of the phase space of ``n`` >= 2 massless particles at
    centre-of-mass energy ``sqrt_s`` [GeV] (module docstring; Kleiss, Stirling, Ellis 1986,
    Eq. 2.5).

    The closed form is evaluated directly; where one of its factors would leave the float64
    range (large n: (2 pi)^(4 - 3n) underflows, s^(n - 2) or the factorials overflow), from
    its logarithm (``math.lgamma``) instead.

    Raises ``TypeError`` for a non-integer n; ``ValueError`` for n < 2, sqrt_s <= 0 or
    non-finite, or a volume outside the range of (normal) float64 numbers."""
    n = check_count("n", n, 2)
    sqrt_s = number("sqrt_s", sqrt_s, POSITIVE)
    log_volume = ((4 - 3 * n) * math.log(2 * math.pi) + (n - 1) * math.log(math.pi / 2)
                  + 2 * (n - 2) * math.log(sqrt_s) - math.lgamma(n) - math.lgamma(n - 1))
    if not _LOG_TINY < log_volume < _LOG_HUGE:
        raise ValueError(f"phase_space_volume: the volume of {n}-particle phase space at "
                         f"sqrt_s = {sqrt_s:g} GeV is 10^{log_volume / math.log(10):.1f} "
                         f"GeV^{2 * n - 4}, outside the float64 range; use fewer particles "
                         "(n) or another sqrt_s")
    s = sqrt_s * sqrt_s
    try:
        small = (2 * math.pi) ** (4 - 3 * n)
        volume = (small * (math.pi / 2) ** (n - 1) * s ** (n - 2)
                  / (math.factorial(n - 1) * math.factorial(n - 2)))
    except OverflowError:  # s^(n - 2) or a factorial beyond float64
        return math.exp(log_volume)
    # the direct product unless a factor underflowed or the product overflowed
    return volume if small >= _TINY and _TINY <= volume < math.inf else math.exp(log_volume)


def rambo(n_events: int, n: int, sqrt_s: float, rng: np.random.Generator | int | None = None
          ) -> tuple[np.ndarray, float]:
    """``n_events`` events of ``n`` >= 2 massless momenta in their centre-of-mass frame, flat
    in phase space (RAMBO, module docstring).

    Returns (momenta (n_events, n, 4) float64 (E, px, py, pz) [GeV] summing to
    (sqrt_s, 0, 0, 0), the common weight :func:`phase_space_volume`). ``rng``: a numpy
    Generator or a seed.

    Every argument, and the weight, is checked before any momentum is drawn: ``TypeError``
    for a count that is not an integer (bools, floats and strings included); ``ValueError``
    for n < 2, n_events < 0, sqrt_s <= 0 or non-finite, or a weight outside the float64 range
    (:func:`phase_space_volume`).
    """
    n_events = check_count("n_events", n_events, 0)
    n = check_count("n", n, 2)
    sqrt_s = number("sqrt_s", sqrt_s, POSITIVE)
    weight = phase_space_volume(n, sqrt_s)
    rng = np.random.default_rng(rng)
    # step 1: isotropic massless q_i with energy density q0 exp(-q0); 1 - U lies in (0, 1]
    r = 1.0 - rng.random((n_events, n, 4))
    cos_t = 2.0 * r[..., 0] - 1.0
    sin_t = np.sqrt(np.clip(1.0 - cos_t * cos_t, 0.0, None))
    phi = 2.0 * np.pi * r[..., 1]
    q0 = -np.log(r[..., 2] * r[..., 3])
    q = np.stack((q0, q0 * sin_t * np.cos(phi), q0 * sin_t * np.sin(phi), q0 * cos_t), -1)
    # step 2: the conformal transformation taking sum q to (sqrt_s, 0, 0, 0)
    total = q.sum(axis=1)  # (events, 4)
    mass = np.sqrt(total[:, 0] ** 2 - np.sum(total[:, 1:] ** 2, axis=-1))
    b = -total[:, 1:] / mass[:, None]
    gamma = total[:, 0] / mass
    a = 1.0 / (1.0 + gamma)
    x = sqrt_s / mass
    # step 3
    bq = np.einsum("ek,enk->en", b, q[..., 1:])
    p0 = x[:, None] * (gamma[:, None] * q[..., 0] + bq)
    p3 = x[:, None, None] * (q[..., 1:] + b[:, None, :] * q[..., :1]
                             + (a[:, None] * bq)[..., None] * b[:, None, :])
    return np.concatenate((p0[..., None], p3), axis=-1), weight


def minkowski_dot(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p . q = E_p E_q - p_vec . q_vec over the last axis (length 4, (E, px, py, pz));
    ``ValueError`` when that axis is not of length 4."""
    p, q = np.asarray(p), np.asarray(q)
    if p.shape[-1:] != (4,) or q.shape[-1:] != (4,):
        raise ValueError(f"minkowski_dot: four-vectors (..., 4) expected, got shapes {p.shape} "
                         f"and {q.shape}")
    return p[..., 0] * q[..., 0] - np.sum(p[..., 1:] * q[..., 1:], axis=-1)


def beams(n_events: int, sqrt_s: float) -> np.ndarray:
    """The two incoming massless momenta of a collision in its centre-of-mass frame along z:
    (n_events, 2, 4) = [(sqrt_s/2)(1, 0, 0, 1), (sqrt_s/2)(1, 0, 0, -1)] [GeV].
    ``TypeError`` for an n_events that is not an integer; ``ValueError`` for n_events < 0 or
    sqrt_s <= 0 or non-finite."""
    n_events = check_count("n_events", n_events, 0)
    half = number("sqrt_s", sqrt_s, POSITIVE) / 2.0
    one = np.array([[half, 0.0, 0.0, half], [half, 0.0, 0.0, -half]])
    return np.broadcast_to(one, (n_events, 2, 4)).copy()


__all__ = ["beams", "minkowski_dot", "phase_space_volume", "rambo"]
