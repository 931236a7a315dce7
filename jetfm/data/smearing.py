"""A simple, documented detector model for generator-level particles (AspenOpenJets-like).

Each visible particle is smeared according to how a CMS-like detector measures it:

* charged particles (tracks: charged hadrons, electrons, muons): transverse momentum with
  sigma_pT / pT = a (+) b pT (``(+)`` = sum in quadrature); direction unchanged;
* photons (ECAL): energy with sigma_E / E = a / sqrt(E) (+) b; eta and phi snapped to the
  centre of an ECAL cell (default 0.0174 x 0.0174);
* neutral hadrons (HCAL): energy with sigma_E / E = a / sqrt(E) (+) b, much worse; eta and phi
  snapped to an HCAL cell (default 0.087 x 0.087).

The smearing factor f multiplies the particle's three-momentum (and, for neutrals, its energy;
charged particles keep their mass). f is log-normal with mean exactly 1 and standard deviation
exactly the configured relative resolution, so the energy scale is unbiased on average and f > 0
always: four-momenta stay physical (E >= |p|). Particles sharing a cell are *not* merged.
After smearing, particles below ``pt_threshold`` are removed and counted by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jetfm.physics import kinematics as kin


@dataclass(frozen=True)
class SmearingConfig:
    """Resolution parameters. Energies and momenta in GeV, cell sizes in eta units and rad."""

    track_constant: float = 0.005  # a in sigma_pT/pT = a (+) b pT
    track_slope: float = 1.5e-4  # b [1/GeV]
    ecal_stochastic: float = 0.03  # a in sigma_E/E = a/sqrt(E) (+) b [sqrt(GeV)]
    ecal_constant: float = 0.005  # b
    hcal_stochastic: float = 1.0  # [sqrt(GeV)]
    hcal_constant: float = 0.05
    ecal_cell: float = 0.0174
    hcal_cell: float = 0.087
    pt_threshold: float = 0.5  # particles with smeared pT below this are removed [GeV]

    def track_resolution(self, pt: np.ndarray) -> np.ndarray:
        """Relative resolution sigma_pT / pT of a track with transverse momentum ``pt``."""
        return np.hypot(self.track_constant, self.track_slope * np.asarray(pt))

    def ecal_resolution(self, energy: np.ndarray) -> np.ndarray:
        """Relative resolution sigma_E / E of a photon with energy ``energy``."""
        return np.hypot(self.ecal_stochastic / np.sqrt(energy), self.ecal_constant)

    def hcal_resolution(self, energy: np.ndarray) -> np.ndarray:
        """Relative resolution sigma_E / E of a neutral hadron with energy ``energy``."""
        return np.hypot(self.hcal_stochastic / np.sqrt(energy), self.hcal_constant)


def lognormal_factor(sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positive random factors with mean 1 and standard deviation ``sigma`` (same shape)."""
    s2 = np.log1p(np.square(sigma))
    return np.exp(np.sqrt(s2) * rng.standard_normal(np.shape(sigma)) - 0.5 * s2)


def snap_to_cells(eta: np.ndarray, phi: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Move (eta, phi [rad]) to the centre of its cell on a grid of size ``cell``.

    The phi grid has round(2 pi / cell) equal cells, so it closes on itself.
    """
    eta_c = (np.floor(eta / cell) + 0.5) * cell
    n_phi = round(2 * np.pi / cell)
    width = 2 * np.pi / n_phi
    phi_c = (np.floor((phi + np.pi) / width) + 0.5) * width - np.pi
    return eta_c, phi_c


def smear(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
    pid: np.ndarray,
    charge: np.ndarray,
    config: SmearingConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Smear flat (n_particles,) four-momenta [GeV] by particle type.

    Returns ``(px, py, pz, energy, keep)`` as float64 arrays and a boolean mask ``keep`` of
    particles whose smeared pT passes ``config.pt_threshold``.
    """
    px, py, pz, energy = (np.asarray(a, dtype=np.float64) for a in (px, py, pz, energy))
    pid = np.asarray(pid)
    charged = np.asarray(charge) != 0
    photon = ~charged & (pid == 22)
    pt = kin.pt(px, py)
    p = np.sqrt(pt**2 + pz**2)
    mass2 = np.maximum(kin.mass2(energy, px, py, pz), 0.0)

    sigma = np.where(
        charged,
        config.track_resolution(pt),
        np.where(photon, config.ecal_resolution(energy), config.hcal_resolution(energy)),
    )
    f = lognormal_factor(sigma, rng)

    out_px, out_py, out_pz = f * px, f * py, f * pz
    out_e = np.where(charged, np.sqrt(f**2 * p**2 + mass2), f * energy)

    for sel, cell in ((photon, config.ecal_cell), (~charged & ~photon, config.hcal_cell)):
        eta = kin.eta(px[sel], py[sel], pz[sel])
        eta, phi = snap_to_cells(eta, kin.phi(px[sel], py[sel]), cell)
        p_sel = f[sel] * p[sel]
        out_px[sel] = p_sel / np.cosh(eta) * np.cos(phi)
        out_py[sel] = p_sel / np.cosh(eta) * np.sin(phi)
        out_pz[sel] = p_sel * np.tanh(eta)

    keep = kin.pt(out_px, out_py) > config.pt_threshold
    return out_px, out_py, out_pz, out_e, keep
