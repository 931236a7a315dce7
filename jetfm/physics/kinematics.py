"""Four-vector kinematics on numpy or awkward arrays (any shape; elementwise).

Conventions: momenta and energies in GeV, angles in radians, phi in (-pi, pi].
Masses from E^2 - p^2 < 0 (rounding of nearly massless systems) are returned as
-sqrt(|m^2|), the convention of ROOT's TLorentzVector::M, so rounding stays visible.

**Every function is finite for every finite input**, including particles along the beam
(pT = 0, e.g. (px, py, pz, E) = (0, 0, 0.5, 0.5)) and null particles (0, 0, 0, 0):

* rapidity and pseudorapidity of a pT = 0 momentum are capped as FastJet's ``PseudoJet`` does
  (``fastjet/PseudoJet.cc``, ``_set_rap_phi``; ``MaxRap = 1e5`` in ``PseudoJet.hh``): where
  ``m_T = 0`` (pT = 0 and E <= |pz|) the value is ``+-(MAX_RAP + |pz|)`` with the sign of pz
  (+ for pz = 0), so different beam-axis momenta keep different rapidities and none comes
  within any jet radius (R <= 1000) of a real particle: FastJet never clusters them with
  one, and their pT weight is 0 in every pT-weighted sum. Two deviations from FastJet, both
  only for unphysical inputs: FastJet's ``rap()`` is +-inf for pT = 0 and E < |pz| (jetfm
  caps it), and FastJet's ``eta()`` is +MAX_RAP for every pT = 0 momentum (jetfm gives
  pseudorapidity the sign of pz and the |pz| offset, equal to the rapidity of a massless
  beam-axis particle). Every rapidity lies in [-(MAX_RAP + |pz|), MAX_RAP + |pz|].
* phi of a pT = 0 momentum is 0 (``atan2(0, 0)``, as FastJet).
* logarithms of momenta and energies (:func:`log_momentum`) are floored at
  :data:`MOMENTUM_FLOOR`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ArrayLike = Any  # numpy or awkward array

# FastJet's fastjet::MaxRap (PseudoJet.hh): the rapidity cap of pT = 0 momenta.
MAX_RAP: float = 1e5
# Floor of the argument of log_momentum [GeV]: far below any detector threshold (JetClass
# particles have pT > 0.5 GeV), so only exact zeros and float rounding reach it.
MOMENTUM_FLOOR: float = 1e-10


def pt(px: ArrayLike, py: ArrayLike) -> ArrayLike:
    """Transverse momentum sqrt(px^2 + py^2) [GeV]."""
    return np.hypot(px, py)


def phi(px: ArrayLike, py: ArrayLike) -> ArrayLike:
    """Azimuth atan2(py, px) in (-pi, pi] [rad]."""
    return wrap_phi(np.arctan2(py, px))


def _beam_rapidity(pz: ArrayLike) -> ArrayLike:
    """FastJet's capped rapidity of a beam-axis momentum: +-(MAX_RAP + |pz|), + for pz >= 0."""
    return np.where(pz >= 0, 1.0, -1.0) * (MAX_RAP + np.abs(pz))


def eta(px: ArrayLike, py: ArrayLike, pz: ArrayLike) -> ArrayLike:
    """Pseudorapidity asinh(pz / pt); at pt = 0 capped to +-(MAX_RAP + |pz|) (module docstring)."""
    pt_ = pt(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.arcsinh(pz / pt_)
    return np.where(pt_ > 0, value, _beam_rapidity(pz))


def rapidity(
    energy: ArrayLike, pz: ArrayLike, px: ArrayLike = 0.0, py: ArrayLike = 0.0
) -> ArrayLike:
    """Rapidity y = 0.5 log((E + pz) / (E - pz)) computed as FastJet's ``PseudoJet::rap``.

    ``y = -+0.5 log(m_T^2 / (E + |pz|)^2)`` (sign of pz) with ``m_T^2 = pT^2 + max(m^2, 0)``
    and ``m^2 = (E + pz)(E - pz) - pT^2``: no cancellation for nearly massless particles, and
    rounding below m^2 = 0 is taken as massless. Pass ``px``, ``py`` for FastJet's value
    exactly; without them pT = 0 is assumed, which changes nothing for a non-tachyonic momentum
    (m_T^2 = E^2 - pz^2 either way). ``m_T = 0`` (beam axis) gives ``+-(MAX_RAP + |pz|)``; the
    result is clipped into that range (unphysical E = pz = 0 < pT), so it is always finite.
    """
    pt2 = px**2 + py**2
    mt2 = pt2 + np.maximum((energy + pz) * (energy - pz) - pt2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 0.5 * np.log(mt2 / (energy + np.abs(pz)) ** 2)
    bound = MAX_RAP + np.abs(pz)
    y = np.minimum(np.maximum(np.where(pz > 0, -y, y), -bound), bound)
    return np.where(mt2 > 0, y, _beam_rapidity(pz))


def log_momentum(value: ArrayLike) -> ArrayLike:
    """log(max(value, MOMENTUM_FLOOR)) of a momentum or energy [GeV] (e.g. log pT): finite for
    pT = 0 and null particles (log(1e-10) = -23.0)."""
    return np.log(np.maximum(value, MOMENTUM_FLOOR))


def mass2(energy: ArrayLike, px: ArrayLike, py: ArrayLike, pz: ArrayLike) -> ArrayLike:
    """Invariant mass squared E^2 - |p|^2 [GeV^2]."""
    return energy**2 - px**2 - py**2 - pz**2


def mass(energy: ArrayLike, px: ArrayLike, py: ArrayLike, pz: ArrayLike) -> ArrayLike:
    """Invariant mass [GeV]; negative m^2 gives -sqrt(|m^2|) (TLorentzVector convention)."""
    m2 = mass2(energy, px, py, pz)
    return np.sign(m2) * np.sqrt(np.abs(m2))


def wrap_phi(angle: ArrayLike) -> ArrayLike:
    """Wrap an angle into (-pi, pi] [rad]."""
    return np.pi - np.mod(np.pi - angle, 2.0 * np.pi)


def delta_phi(phi_a: ArrayLike, phi_b: ArrayLike) -> ArrayLike:
    """phi_a - phi_b wrapped into (-pi, pi] [rad]."""
    return wrap_phi(phi_a - phi_b)


def delta_r(eta_a: ArrayLike, phi_a: ArrayLike, eta_b: ArrayLike, phi_b: ArrayLike) -> ArrayLike:
    """Angular distance sqrt(d_eta^2 + d_phi^2) with wrapped d_phi."""
    return np.hypot(eta_a - eta_b, delta_phi(phi_a, phi_b))


def ptetaphim_to_p4(
    pt_: ArrayLike, eta_: ArrayLike, phi_: ArrayLike, mass_: ArrayLike | float = 0.0
) -> tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]:
    """(pt, eta, phi, m) -> (px, py, pz, E) [GeV]."""
    px = pt_ * np.cos(phi_)
    py = pt_ * np.sin(phi_)
    pz = pt_ * np.sinh(eta_)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass_**2)
    return px, py, pz, energy
