"""Lund coordinates against fastjet-contrib's LundGenerator and a hand-computed splitting; the
tree soft-drop mass against fastjet-contrib's SoftDrop."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from io_jets import random_jets

from jetfm.data import JetBatch
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import cluster
from jetfm.physics.lund import LUND_FIELDS, lund_splittings, primary_lund, softdrop_mass
from jetfm.physics.observables import softdrop_mass as batch_softdrop_mass
from jetfm.physics.trees import build_trees

COUNTS = np.array([1, 2, 3, 9, 30, 45, 60, 17])


@pytest.fixture(scope="module")
def jets() -> JetBatch:
    return random_jets(len(COUNTS), seed=11, counts=COUNTS)


def test_two_particle_splitting_by_hand():
    """Massless 100 and 30 GeV particles at (y, phi) = (0.1, 0.2) and (0.4, -0.2)."""
    pt, y, phi = np.array([30.0, 100.0]), np.array([0.4, 0.1]), np.array([-0.2, 0.2])
    batch = JetBatch.from_ptetaphi([pt], [y], [phi], 0.0)  # massless: eta = y
    (split,) = lund_splittings(build_trees(batch, "cambridge")).tolist()[0]
    p = np.stack(kin.ptetaphim_to_p4(pt, y, phi), 1).sum(axis=0)
    expected = {
        "delta": 0.5,
        "kt": 15.0,
        "z": 30 / 130,
        "psi": np.arctan2(0.3, -0.4),
        "m": np.sqrt(p[3] ** 2 - p[0] ** 2 - p[1] ** 2 - p[2] ** 2),
    }
    for name in LUND_FIELDS:
        assert split[name] == pytest.approx(expected[name], rel=1e-12), name
    assert split["node"] == 2


def test_primary_declusterings_equal_fastjet_lund_generator(jets):
    trees = build_trees(jets, "cambridge")
    mine = primary_lund(trees)
    theirs = cluster(jets, "cambridge").exclusive_jets_lund_declusterings(1)[:, 0]
    assert ak.num(mine).tolist() == ak.num(theirs).tolist()
    assert ak.num(mine)[0] == 0 and ak.num(mine)[1] == 1
    for name, ref in (("delta", "Delta"), ("kt", "kt")):
        np.testing.assert_allclose(
            ak.to_numpy(ak.flatten(mine[name])), ak.to_numpy(ak.flatten(theirs[ref])), rtol=1e-12
        )


def test_all_splittings(jets):
    trees = build_trees(jets, "kt", "WTA_pt")
    splits = lund_splittings(trees)
    assert ak.num(splits).tolist() == (COUNTS - 1).tolist()
    flat = ak.flatten(splits)
    z, delta, kt = (ak.to_numpy(flat[f]) for f in ("z", "delta", "kt"))
    assert np.all((z > 0) & (z <= 0.5))
    assert np.all(np.abs(ak.to_numpy(flat.psi)) <= np.pi)
    # kt = z (pT_a + pT_b) Delta, with pT_a + pT_b the (WTA) parent pT
    nodes = ak.to_numpy(flat.node) + np.repeat(trees.offsets[:-1], ak.num(splits))
    np.testing.assert_allclose(kt, z * trees.pt[nodes] * delta, rtol=1e-12)
    # the primary splittings are the first ones of the depth-first order of the root's branch
    primary = primary_lund(trees)
    assert ak.all(primary.node[:, :1] == splits.node[:, :1])


@pytest.mark.parametrize(("beta", "z_cut"), [(0.0, 0.1), (1.0, 0.2), (2.0, 0.05)])
def test_tree_softdrop_equals_fastjet_softdrop(beta, z_cut):
    jets = random_jets(300, seed=5, n_min=1, n_max=60)
    theirs = cluster(jets, "cambridge").exclusive_jets_softdrop_grooming(
        njets=1,
        beta=beta,
        symmetry_cut=z_cut,
        symmetry_measure="scalar_z",
        R0=0.8,
        recursion_choice="larger_pt",
    )
    theirs = ak.to_numpy(theirs.msoftdrop)
    mine = softdrop_mass(build_trees(jets, "cambridge"), beta, z_cut, 0.8)
    # Single-particle results (e.g. a TeV electron) differ by the rounding of m^2 = E^2 - p^2
    # (~1e-10 GeV^2), which FastJet computes in another order: |dm| < 1e-5 GeV there.
    np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-5)
    heavy = theirs > 1.0
    np.testing.assert_allclose(mine[heavy], theirs[heavy], rtol=1e-9)
    assert heavy.sum() > 200
    np.testing.assert_array_equal(batch_softdrop_mass(jets, beta, z_cut, 0.8), mine)


def test_softdrop_edge_cases():
    batch = JetBatch.from_ptetaphi(
        [[], [80.0], [200.0, 5.0]], [[], [0.1], [0.0, 0.3]], [[], [0.2], [0.0, 0.3]], 0.13957
    )
    masses = softdrop_mass(build_trees(batch, "cambridge"), 0.0, 0.1)
    assert np.isnan(masses[0])
    assert masses[1] == pytest.approx(0.13957, rel=1e-6)
    assert masses[2] == pytest.approx(0.13957, rel=1e-6)  # z = 5/205 < 0.1: the soft one goes
    with pytest.raises(ValueError, match="Cambridge/Aachen E-scheme"):
        softdrop_mass(build_trees(batch, "kt"))
