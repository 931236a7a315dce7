"""FastJet helpers: jet definitions from names, the awkward input, batch clustering against
FastJet's per-jet PseudoJet API, WTA recombination, jets with fewer particles than subjets."""

from __future__ import annotations

import awkward as ak
import fastjet
import numpy as np
import pytest
from io_jets import random_jets

from jetfm.data import JetBatch, JetDataError
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import (
    MAX_R,
    cluster,
    constituents_p4,
    exclusive_jets_up_to,
    jet_definition,
)


def rows(jets: ak.Array) -> np.ndarray:
    """One jet's subjets as an (n, 4) array px, py, pz, E sorted by px."""
    out = np.array([[j[f] for f in ("px", "py", "pz", "E")] for j in ak.to_list(jets)])
    return out[np.argsort(out[:, 0])] if len(out) else out.reshape(0, 4)


def two_groups(n_jets: int, seed: int) -> JetBatch:
    """Each "jet" holds two groups of particles about 1.5 apart in (eta, phi)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(4, 15, n_jets)
    n = counts.sum()
    centre = np.repeat(rng.uniform(-1, 1, n_jets), counts)
    side = rng.integers(0, 2, n) * 1.5
    pt = rng.exponential(30, n) + 1
    eta = centre + side + rng.normal(0, 0.1, n)
    phi = rng.normal(0, 0.1, n) - side
    return JetBatch.from_ptetaphi(*(ak.unflatten(x, counts) for x in (pt, eta, phi)), 0.1396)


def test_jet_definition_from_names():
    jd = jet_definition("antikt", 0.4, "WTA_pt")
    assert jd.jet_algorithm() == fastjet.antikt_algorithm
    assert jd.recombination_scheme() == fastjet.WTA_pt_scheme
    assert jd.R() == 0.4
    default = jet_definition()
    assert default.jet_algorithm() == fastjet.kt_algorithm and default.R() == MAX_R
    assert jet_definition("cambridge").jet_algorithm() == fastjet.cambridge_algorithm
    for bad in ({"algorithm": "siscone"}, {"recombination": "pt2"}, {"r": 0.0}):
        with pytest.raises(ValueError, match="unknown|radius"):
            jet_definition(**bad)


def test_constituents_p4_round_trip_and_empty_jets():
    batch = random_jets(6, seed=2, counts=[3, 0, 1, 7, 0, 2], label=False)
    p4 = constituents_p4(batch)
    assert ak.num(p4).tolist() == [3, 0, 1, 7, 0, 2]
    assert ak.parameters(p4.layout.content)["__record__"] == "Momentum4D"
    for ours, theirs in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "energy")):
        assert ak.all(p4[ours] == batch.particles[theirs])
        assert ak.flatten(p4[ours]).layout.dtype == np.float64


def test_non_finite_momenta_name_origin_and_jet():
    batch = random_jets(3, seed=4, counts=[2, 3, 2], label=False)
    energy = ak.to_numpy(ak.flatten(batch.particles.energy)).copy()
    energy[3] = np.inf  # second particle of jet 1
    bad = JetBatch.from_p4(
        batch.particles.px,
        batch.particles.py,
        batch.particles.pz,
        ak.unflatten(energy, batch.n_particles),
        source_files=("sample.root",),
    )
    with pytest.raises(JetDataError, match=r"jets\.h5: non-finite energy.*jet 1, sample\.root:1"):
        constituents_p4(bad, origin="jets.h5")


@pytest.mark.parametrize(("algorithm", "r"), [("antikt", 0.4), ("kt", 0.6), ("cambridge", 0.8)])
def test_batch_clustering_matches_per_jet_fastjet(algorithm, r):
    batch = two_groups(15, seed=7)
    jets = cluster(batch, algorithm, r).inclusive_jets()
    assert ak.all(ak.num(jets) >= 2)  # the two groups are resolved
    jd = fastjet.JetDefinition(getattr(fastjet, f"{algorithm}_algorithm"), r)
    for i, p in enumerate(ak.to_list(batch.particles)):
        particles = [fastjet.PseudoJet(q["px"], q["py"], q["pz"], q["energy"]) for q in p]
        expected = fastjet.ClusterSequence(particles, jd).inclusive_jets()
        expected = np.array([[j.px(), j.py(), j.pz(), j.E()] for j in expected])
        np.testing.assert_allclose(rows(jets[i]), expected[np.argsort(expected[:, 0])], rtol=1e-12)


def test_wta_axis_follows_the_hardest_particle():
    rng = np.random.default_rng(3)
    counts = np.full(10, 8)
    pt = rng.uniform(1, 5, 80)
    pt[::8] = 100.0  # one particle per jet harder than all others together
    eta, phi = rng.normal(0, 0.3, 80), rng.normal(0, 0.3, 80)
    batch = JetBatch.from_ptetaphi(*(ak.unflatten(x, counts) for x in (pt, eta, phi)))
    axis = ak.flatten(exclusive_jets_up_to(cluster(batch, "kt", MAX_R, "WTA_pt"), 1))
    axis_pt = kin.pt(ak.to_numpy(axis.px), ak.to_numpy(axis.py))
    np.testing.assert_allclose(axis_pt, pt.reshape(10, 8).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(kin.phi(ak.to_numpy(axis.px), ak.to_numpy(axis.py)), phi[::8])
    axis_eta = kin.eta(*(ak.to_numpy(axis[f]) for f in ("px", "py", "pz")))
    np.testing.assert_allclose(axis_eta, eta[::8], atol=1e-12)
    # E-scheme instead gives the four-momentum sum, away from the hardest particle
    e_axis = ak.flatten(exclusive_jets_up_to(cluster(batch, "kt", MAX_R, "E"), 1))
    np.testing.assert_allclose(ak.to_numpy(e_axis.px), batch.jet_p4[:, 0], rtol=1e-9)


def test_exclusive_jets_up_to_keeps_small_jets_whole():
    batch = random_jets(4, seed=5, counts=[1, 2, 3, 9], label=False)
    subjets = exclusive_jets_up_to(cluster(batch), 3)
    assert ak.num(subjets).tolist() == [1, 2, 3, 3]
    for i in range(3):  # fewer particles than requested: the particles themselves
        p = batch.particles[i]
        expected = np.stack([ak.to_numpy(p[f]) for f in ("px", "py", "pz", "energy")], axis=1)
        np.testing.assert_array_equal(rows(subjets[i]), expected[np.argsort(expected[:, 0])])
    np.testing.assert_allclose(rows(subjets[3]).sum(axis=0), batch.jet_p4[3], rtol=1e-12)
