"""Four-vector kinematics on numpy or awkward arrays (any shape; elementwise).

Conventions: momenta and energies in GeV, angles in radians, phi in (-pi, pi],
massless particles at pt = 0 get eta = +-inf (flagged, never silently replaced).
Masses from E^2 - p^2 < 0 (rounding of nearly massless systems) are returned as
-sqrt(|m^2|), the convention of ROOT's TLorentzVector::M, so rounding stays visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ArrayLike = Any  # numpy or awkward array


def pt(px: ArrayLike, py: ArrayLike) -> ArrayLike:
    """Transverse momentum sqrt(px^2 + py^2) [GeV]."""
    return np.hypot(px, py)


def phi(px: ArrayLike, py: ArrayLike) -> ArrayLike:
    """Azimuth atan2(py, px) in (-pi, pi] [rad]."""
    return wrap_phi(np.arctan2(py, px))


def eta(px: ArrayLike, py: ArrayLike, pz: ArrayLike) -> ArrayLike:
    """Pseudorapidity asinh(pz / pt); +-inf along the beam."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arcsinh(pz / pt(px, py))


def rapidity(energy: ArrayLike, pz: ArrayLike) -> ArrayLike:
    """Rapidity 0.5 log((E + pz) / (E - pz))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * np.log((energy + pz) / (energy - pz))


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
