"""Detector smearing: resolutions as configured, unbiased scale, cell grid, physical momenta."""

import numpy as np
import pytest

from jetfm.data.smearing import SmearingConfig, lognormal_factor, smear
from jetfm.physics import kinematics as kin

N = 20_000
CONFIG = SmearingConfig()


def _particles(pid: int, charge: float, energy: float, mass: float = 0.0, n: int = N):
    """n particles of one type and energy [GeV], directions spread over |eta| < 2.5."""
    rng = np.random.default_rng(7)
    eta = rng.uniform(-2.5, 2.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    p = np.sqrt(energy**2 - mass**2)
    px, py, pz, e = kin.ptetaphim_to_p4(p / np.cosh(eta), eta, phi, mass)
    return px, py, pz, e, np.full(n, pid), np.full(n, charge)


def _smear(particles, seed: int = 1, config: SmearingConfig = CONFIG):
    return smear(*particles, config, np.random.default_rng(seed))


def test_lognormal_factor_has_mean_one_and_configured_spread():
    f = lognormal_factor(np.full(200_000, 0.4), np.random.default_rng(3))
    assert np.all(f > 0)
    assert abs(f.mean() - 1) < 4 * 0.4 / np.sqrt(len(f))
    assert f.std() == pytest.approx(0.4, rel=0.02)


@pytest.mark.parametrize(
    ("pid", "charge", "energy", "mass", "resolution"),
    [
        (22, 0.0, 20.0, 0.0, CONFIG.ecal_resolution),
        (22, 0.0, 300.0, 0.0, CONFIG.ecal_resolution),
        (130, 0.0, 10.0, 0.497611, CONFIG.hcal_resolution),
        (2112, 0.0, 200.0, 0.939565, CONFIG.hcal_resolution),
    ],
)
def test_calorimeter_energy_resolution_and_scale(pid, charge, energy, mass, resolution):
    particles = _particles(pid, charge, energy, mass)
    px, py, pz, e, _ = _smear(particles)
    ratio = e / particles[3]
    sigma = float(resolution(energy))
    assert ratio.std() == pytest.approx(sigma, rel=0.03)  # stat. precision ~0.5 %
    assert abs(ratio.mean() - 1) < 4 * sigma / np.sqrt(N)  # unbiased
    # Snapped direction, smeared |p| scaled like E: E >= |p| still holds.
    assert np.all(e >= np.sqrt(px**2 + py**2 + pz**2) * (1 - 1e-12))


@pytest.mark.parametrize(("pid", "charge", "pt"), [(211, 1.0, 5.0), (-13, 1.0, 100.0)])
def test_track_pt_resolution_keeps_direction_and_mass(pid, charge, pt):
    mass = 0.13957 if abs(pid) == 211 else 0.10566
    particles = _particles(pid, charge, 1.0, n=N)
    eta = kin.eta(*particles[:3])
    phi = kin.phi(*particles[:2])
    px, py, pz, e = kin.ptetaphim_to_p4(np.full(N, pt), eta, phi, mass)
    px_s, py_s, pz_s, e_s, _ = _smear((px, py, pz, e, *particles[4:]))
    ratio = kin.pt(px_s, py_s) / pt
    sigma = float(CONFIG.track_resolution(pt))
    assert ratio.std() == pytest.approx(sigma, rel=0.03)
    assert abs(ratio.mean() - 1) < 4 * sigma / np.sqrt(N)
    np.testing.assert_allclose(kin.eta(px_s, py_s, pz_s), eta, atol=1e-9)
    np.testing.assert_allclose(kin.delta_phi(kin.phi(px_s, py_s), phi), 0, atol=1e-9)
    np.testing.assert_allclose(kin.mass(e_s, px_s, py_s, pz_s), mass, rtol=1e-6)


@pytest.mark.parametrize(("pid", "cell"), [(22, CONFIG.ecal_cell), (2112, CONFIG.hcal_cell)])
def test_neutral_directions_snap_to_cell_centres(pid, cell):
    particles = _particles(pid, 0.0, 50.0, 0.939565 if pid == 2112 else 0.0, n=2000)
    px, py, pz, _, _ = _smear(particles)
    eta = kin.eta(px, py, pz)
    phi = kin.phi(px, py)
    eta_index = eta / cell - 0.5
    np.testing.assert_allclose(eta_index, np.round(eta_index), atol=1e-6)
    width = 2 * np.pi / round(2 * np.pi / cell)
    phi_index = (phi + np.pi) / width - 0.5
    np.testing.assert_allclose(phi_index, np.round(phi_index), atol=1e-6)
    # Snapping moves a particle by at most half a cell diagonal.
    dr = kin.delta_r(eta, phi, kin.eta(*particles[:3]), kin.phi(*particles[:2]))
    assert dr.max() <= np.hypot(cell, width) / 2 + 1e-9


def test_pt_threshold_mask_and_seeded_reproducibility():
    rng = np.random.default_rng(11)
    n = 5000
    pt = rng.exponential(1.5, n)
    eta = rng.uniform(-2, 2, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pid = rng.choice([211, -211, 22, 130, 11], n)
    charge = np.where(np.isin(pid, [22, 130]), 0.0, np.where(pid > 0, 1.0, -1.0))
    charge[pid == 11] = -1.0
    particles = (*kin.ptetaphim_to_p4(pt, eta, phi, 0.0), pid, charge)

    first = _smear(particles, seed=5)
    again = _smear(particles, seed=5)
    other = _smear(particles, seed=6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[3], other[3])

    px, py, pz, e, keep = first
    np.testing.assert_array_equal(keep, kin.pt(px, py) > CONFIG.pt_threshold)
    assert 0 < np.count_nonzero(~keep) < n
    assert np.all(e >= np.sqrt(px**2 + py**2 + pz**2) * (1 - 1e-12))
    # Energy scale unbiased on average over a mixed sample.
    assert e.sum() / particles[3].sum() == pytest.approx(1.0, abs=0.02)
