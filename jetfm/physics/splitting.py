r"""Exact two-body splitting kinematics: parent + (m1, m2, cos theta*, phi*) <-> two children.

A parent of four-momentum P (mass M) splits into child 1 (mass m1) and child 2 (mass m2). In the
parent's rest frame reached by a boost along the parent direction n (the helicity frame), child
1 flies along the direction with polar angle theta* to n and azimuth phi* around n, measured
from the unit vector e_eta (in the plane of n and the beam axis z, pointing towards +z) towards
e_phi = e_eta x n (the direction of increasing azimuth); child 2 flies back to back with it.
Child 1 is built in the lab with light-cone components along n (no cancellation even for
parents boosted by gamma ~ 10^4), child 2 = P - child 1, so four-momentum is conserved by
construction. Children are physical when 0 <= m1, 0 <= m2, m1 + m2 <= M.

The parameters are invariant under boosts along n and under rotations about the beam axis; a
general boost changes cos theta* and phi* (Wigner rotation of the helicity frame).

Unconstrained coordinates for density models (:func:`to_unconstrained`): ``r1 = m1 / M`` and
``r2 = m2 / (M - m1)`` in [0, 1] and ``(1 + cos theta*) / 2`` go through a logit, ``phi*``
stays an angle. Values within ``EPS`` of the ends (massless children: photons have r = 0) are
clipped there and counted (:class:`SplittingParameters.n_clipped`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-6  # clip of r1, r2 and (1 + cos theta*) / 2 into [EPS, 1 - EPS]
UNCONSTRAINED: tuple[str, ...] = ("logit_r1", "logit_r2", "logit_c", "phi")


@dataclass
class SplittingParameters:
    """Per splitting (arrays of one shape): parent mass ``mass``, children masses ``m1``,
    ``m2`` [GeV], ``cos_theta`` and ``phi`` [rad] of child 1 in the parent's helicity frame.
    Rounding (jets stored in float32 give massless particles m^2 ~ -1e-4 GeV^2) is counted:
    ``n_negative_m2`` children with m^2 < 0 taken as massless, ``n_clipped`` splittings with
    m1 + m2 > M whose children masses were scaled down to M."""

    mass: np.ndarray
    m1: np.ndarray
    m2: np.ndarray
    cos_theta: np.ndarray
    phi: np.ndarray
    n_negative_m2: int = 0
    n_clipped: int = 0


def _axes(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """|p| and the unit vectors n (along p), e_eta, e_phi of momenta (..., 4), each (..., 3)."""
    px, py, pz = p4[..., 0], p4[..., 1], p4[..., 2]
    pt = np.hypot(px, py)
    if np.any(pt <= 0):
        raise ValueError(f"{int(np.sum(pt <= 0))} parent(s) along the beam axis (pT = 0)")
    p = np.hypot(pt, pz)
    cos_phi, sin_phi = px / pt, py / pt
    sin_t, cos_t = pt / p, pz / p
    n = np.stack([sin_t * cos_phi, sin_t * sin_phi, cos_t], axis=-1)
    e_eta = np.stack([-cos_t * cos_phi, -cos_t * sin_phi, sin_t], axis=-1)
    e_phi = np.stack([-sin_phi, cos_phi, np.zeros_like(pt)], axis=-1)
    return p, n, e_eta, e_phi


def _light_cone(energy: np.ndarray, p_par: np.ndarray, mt2: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(E + p_par, E - p_par) along an axis, the small one as mT^2 / large (no cancellation)."""
    forward = p_par >= 0
    big = energy + np.abs(p_par)
    small = mt2 / big
    return np.where(forward, big, small), np.where(forward, small, big)


def mass_of(p4: np.ndarray) -> np.ndarray:
    """Invariant mass [GeV] of momenta (..., 4), rounding below m^2 = 0 clipped to 0."""
    m2 = p4[..., 3] ** 2 - np.sum(p4[..., :3] ** 2, axis=-1)
    return np.sqrt(np.maximum(m2, 0.0))


def split(
    parent: np.ndarray,
    m1: np.ndarray,
    m2: np.ndarray,
    cos_theta: np.ndarray,
    phi: np.ndarray,
    mass: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Children (..., 4) px, py, pz, E [GeV] of ``parent`` (..., 4) for the given parameters.

    ``mass``: the parent's mass [GeV] when known exactly (a generator knows it); by default it
    is computed from ``parent``. Raises ``ValueError`` for unphysical masses.
    """
    parent = np.asarray(parent, dtype=np.float64)
    m1, m2 = np.asarray(m1, dtype=np.float64), np.asarray(m2, dtype=np.float64)
    big_m = mass_of(parent) if mass is None else np.asarray(mass, dtype=np.float64)
    bad = (m1 < 0) | (m2 < 0) | (m1 + m2 > big_m * (1 + 1e-12))  # tolerance: rounding
    if np.any(bad):
        raise ValueError(f"{int(bad.sum())} splitting(s) with unphysical masses "
                         "(need 0 <= m1, m2 and m1 + m2 <= M)")
    p, n, e_eta, e_phi = _axes(parent)
    # rest frame: energy and momentum of child 1 (Kallen function in factorised form)
    e_star = (big_m**2 + m1**2 - m2**2) / (2 * big_m)
    k = (big_m - m1 - m2) * (big_m + m1 + m2) * (big_m - m1 + m2) * (big_m + m1 - m2)
    p_star = np.sqrt(np.maximum(k, 0.0)) / (2 * big_m)
    kt = p_star * np.sqrt(np.maximum(1 - cos_theta**2, 0.0))
    plus_star, minus_star = _light_cone(e_star, p_star * cos_theta, m1**2 + kt**2)
    # boost along n: light-cone components scale by e^{+-Y}, e^Y = (E + |p|) / M
    e_y = (parent[..., 3] + p) / big_m
    plus, minus = plus_star * e_y, minus_star / e_y
    energy, p_par = 0.5 * (plus + minus), 0.5 * (plus - minus)
    perp = kt[..., None] * (np.cos(phi)[..., None] * e_eta + np.sin(phi)[..., None] * e_phi)
    child1 = np.concatenate([p_par[..., None] * n + perp, energy[..., None]], axis=-1)
    return child1, parent - child1


def parameters(child1: np.ndarray, child2: np.ndarray) -> SplittingParameters:
    """Inverse of :func:`split`: parameters of the splitting of P = child1 + child2 (..., 4)."""
    child1 = np.asarray(child1, dtype=np.float64)
    child2 = np.asarray(child2, dtype=np.float64)
    parent = child1 + child2
    _, n, e_eta, e_phi = _axes(parent)
    m2_raw = [c[..., 3] ** 2 - np.sum(c[..., :3] ** 2, axis=-1) for c in (child1, child2)]
    n_negative = sum(int(np.sum(m < 0)) for m in m2_raw)
    sq1, sq2 = (np.maximum(m, 0.0) for m in m2_raw)
    par = [np.sum(c[..., :3] * n, axis=-1) for c in (child1, child2)]
    # transverse momenta to n are opposite by construction; average out the rounding
    perp = 0.5 * (child1[..., :3] - child2[..., :3]) - 0.5 * (par[0] - par[1])[..., None] * n
    kt2 = np.sum(perp**2, axis=-1)
    plus1, minus1 = _light_cone(child1[..., 3], par[0], sq1 + kt2)
    plus2, minus2 = _light_cone(child2[..., 3], par[1], sq2 + kt2)
    # M^2 = m1^2 + m2^2 + 2 p1.p2 as a sum of non-negative terms
    big_m = np.sqrt(sq1 + sq2 + plus1 * minus2 + minus1 * plus2 + 2 * kt2)
    e_y = (plus1 + plus2) / big_m
    p_cos = 0.5 * (plus1 / e_y - minus1 * e_y)
    p_star = np.hypot(p_cos, np.sqrt(kt2))
    cos_theta = np.where(p_star > 0, p_cos / np.where(p_star > 0, p_star, 1.0), 1.0)
    phi = np.arctan2(np.sum(perp * e_phi, axis=-1), np.sum(perp * e_eta, axis=-1))
    m1, m2 = np.sqrt(sq1), np.sqrt(sq2)
    over = m1 + m2 > big_m
    scale = np.where(over, big_m / np.where(over, m1 + m2, 1.0), 1.0)
    return SplittingParameters(
        big_m, m1 * scale, m2 * scale, cos_theta, phi, n_negative, int(over.sum())
    )


def _logit(x: np.ndarray) -> np.ndarray:
    return np.log(x) - np.log1p(-x)


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def to_unconstrained(params: SplittingParameters) -> tuple[np.ndarray, int]:
    """(..., 4) coordinates ``logit r1, logit r2, logit (1 + cos)/2, phi`` and the number of
    values clipped into [EPS, 1 - EPS] (before the logit)."""
    free = params.mass - params.m1
    r1 = params.m1 / params.mass
    r2 = np.where(free > 0, params.m2 / np.where(free > 0, free, 1.0), 0.0)
    c = 0.5 * (1 + params.cos_theta)
    unit = np.stack([r1, r2, c], axis=-1)
    clipped = np.clip(unit, EPS, 1 - EPS)
    n_clipped = int(np.sum(clipped != unit))
    return np.concatenate([_logit(clipped), params.phi[..., None]], axis=-1), n_clipped


def from_unconstrained(u: np.ndarray, mass: np.ndarray) -> SplittingParameters:
    """Inverse of :func:`to_unconstrained` for parents of mass ``mass`` [GeV]. The unit-interval
    values are clipped into [EPS, 1 - EPS] as in :func:`to_unconstrained`, so for any ``u`` the
    children are physical and both carry energy (r1 -> 1 would leave child 2 with nothing)."""
    r1, r2, c = (np.clip(_sigmoid(u[..., i]), EPS, 1 - EPS) for i in range(3))
    m1 = r1 * mass
    return SplittingParameters(mass, m1, r2 * (mass - m1), 2 * c - 1, u[..., 3])


def log_jacobian(u: np.ndarray) -> np.ndarray:
    """log |d(r1, r2, cos theta*, phi*) / du| per splitting: add it to the NLL in ``u`` to get
    the NLL in the physical (dimensionless) parameters."""
    s = _sigmoid(u[..., :3])
    return np.sum(np.log(s) + np.log1p(-s), axis=-1) + np.log(2.0)
