"""Four-vector kinematics against FastJet's PseudoJet, including beam-axis (pT = 0) momenta."""

from __future__ import annotations

import awkward as ak
import fastjet
import numpy as np
import pytest

from jetfm.physics import kinematics as kin

# (px, py, pz, E) [GeV] along the beam and FastJet's PseudoJet::rap() of each
BEAM = np.array([[0, 0, 0.5, 0.5], [0, 0, 0, 0], [0, 0, -0.5, 0.5], [0, 0, 0.5, 0.6]], float)
FASTJET_RAP = [kin.MAX_RAP + 0.5, kin.MAX_RAP, -(kin.MAX_RAP + 0.5), np.arctanh(0.5 / 0.6)]


def test_rapidity_equals_fastjet_pseudojet():
    rng = np.random.default_rng(0)
    p = rng.normal(0, 50, (500, 3))
    p[:100, 2] *= 1e3  # far forward
    mass = np.where(rng.random(500) < 0.5, 0.0, rng.uniform(0.1, 5, 500))
    energy = np.sqrt(np.sum(p**2, axis=1) + mass**2)
    p4 = np.column_stack([p, energy])
    theirs = [fastjet.PseudoJet(*map(float, row)).rap() for row in p4]
    np.testing.assert_allclose(kin.rapidity(energy, p[:, 2], p[:, 0], p[:, 1]), theirs,
                               rtol=1e-12, atol=1e-12)
    # without px, py: the same for momenta that are not tachyonic
    np.testing.assert_allclose(kin.rapidity(energy, p[:, 2])[mass > 0], np.array(theirs)[mass > 0],
                               rtol=1e-9)


def test_beam_axis_momenta_are_capped_as_fastjet():
    px, py, pz, energy = BEAM.T
    assert kin.rapidity(energy, pz, px, py).tolist() == pytest.approx(FASTJET_RAP, rel=1e-15)
    for row, expected in zip(BEAM, FASTJET_RAP, strict=True):
        assert fastjet.PseudoJet(*row).rap() == pytest.approx(expected, rel=1e-15)
    # pseudorapidity: the massless cap with the sign of pz (FastJet's eta() is +MaxRap for all)
    assert kin.eta(px, py, pz).tolist() == [1e5 + 0.5, 1e5, -(1e5 + 0.5), 1e5 + 0.5]
    assert kin.phi(px, py).tolist() == [0.0, 0.0, 0.0, 0.0]
    # FastJet gives +inf for a tachyonic beam-axis momentum; jetfm keeps the cap
    assert fastjet.PseudoJet(0.0, 0.0, 0.5, 0.4).rap() == np.inf
    assert kin.rapidity(0.4, 0.5, 0.0, 0.0) == kin.MAX_RAP + 0.5
    assert np.isfinite(kin.rapidity(0.0, 0.0, 1.0, 0.0))  # E = pz = 0 < pT: clipped


def test_every_function_finite_for_beam_axis_and_awkward_input():
    px, py, pz, energy = (ak.Array([list(c), [1.0]]) for c in BEAM.T)
    columns = [kin.pt(px, py), kin.eta(px, py, pz), kin.phi(px, py), kin.mass(energy, px, py, pz),
               kin.rapidity(energy, pz, px, py), kin.log_momentum(kin.pt(px, py)),
               kin.log_momentum(energy),
               kin.delta_r(kin.eta(px, py, pz), kin.phi(px, py), 0.3, 1.0)]
    for values in columns:
        assert np.all(np.isfinite(ak.to_numpy(ak.flatten(values))))
    assert kin.log_momentum(np.array([0.0, 1.0])).tolist() == [np.log(kin.MOMENTUM_FLOOR), 0.0]
