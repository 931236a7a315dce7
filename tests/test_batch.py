"""The JetBatch data model: conversions, ordering, truncation, validation, kinematics."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import vector

from jetfm.data import CLASSES, JetBatch, JetDataError
from jetfm.data.classes import class_index
from jetfm.physics import kinematics as kin


def random_batch(n_jets: int = 50, seed: int = 0, max_particles: int = 40) -> JetBatch:
    """Physical random jets: massless and massive constituents around a random axis."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_particles, size=n_jets)
    counts[:3] = [1, 2, 3]
    n = counts.sum()
    jet_eta = np.repeat(rng.uniform(-2, 2, n_jets), counts)
    jet_phi = np.repeat(rng.uniform(-np.pi, np.pi, n_jets), counts)
    pt = rng.exponential(20.0, n) + 0.5
    eta = jet_eta + rng.normal(0, 0.3, n)
    phi = kin.wrap_phi(jet_phi + rng.normal(0, 0.3, n))
    m = rng.choice([0.0, 0.13957, 0.49368], size=n)
    px, py, pz, e = kin.ptetaphim_to_p4(pt, eta, phi, m)
    return JetBatch.from_p4(
        *(ak.unflatten(x, counts) for x in (px, py, pz, e)),
        label=rng.integers(0, len(CLASSES), n_jets),
        extra={"truth_match": rng.integers(0, 2, n_jets).astype(bool)},
        source_files=("a.root",),
        entry=np.arange(n_jets) + 100,
    )


def test_jet_kinematics_match_vector_library():
    batch = random_batch()
    p = batch.particles
    jets = ak.sum(vector.zip({"px": p.px, "py": p.py, "pz": p.pz, "E": p.energy}), axis=1)
    np.testing.assert_allclose(batch.jet_pt, jets.pt, rtol=1e-10)
    np.testing.assert_allclose(batch.jet_eta, jets.eta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(batch.jet_mass, jets.mass, rtol=1e-8, atol=1e-4)
    np.testing.assert_allclose(
        kin.delta_phi(batch.jet_phi, jets.phi), 0.0, atol=1e-12
    )  # same angle, maybe differently wrapped


def test_eta_rel_phi_rel_and_delta_phi_wrapping():
    batch = random_batch()
    phi_rel = ak.flatten(batch.phi_rel).to_numpy()
    assert np.all(phi_rel > -np.pi) and np.all(phi_rel <= np.pi)
    # independent reference: vector's deltaphi of each particle to the jet axis
    p = batch.particles
    particles = vector.zip({"px": p.px, "py": p.py, "pz": p.pz, "E": p.energy})
    axis = ak.sum(particles, axis=1)
    dphi_ref = ak.flatten(particles.deltaphi(axis)).to_numpy()
    np.testing.assert_allclose(kin.wrap_phi(phi_rel - dphi_ref), 0.0, atol=1e-9)
    deta_ref = ak.flatten(particles.eta - axis.eta).to_numpy()
    np.testing.assert_allclose(ak.flatten(batch.eta_rel).to_numpy(), deta_ref, atol=1e-9)


def test_wrap_phi_half_open_interval():
    angles = np.array([np.pi, -np.pi, 3 * np.pi, -3 * np.pi, 0.0, 2 * np.pi, 7.0, -7.0])
    wrapped = kin.wrap_phi(angles)
    assert np.all(wrapped > -np.pi) and np.all(wrapped <= np.pi)
    np.testing.assert_allclose(wrapped[:4], np.pi)
    np.testing.assert_allclose(np.cos(wrapped), np.cos(angles), atol=1e-12)
    np.testing.assert_allclose(np.sin(wrapped), np.sin(angles), atol=1e-12)


def test_padded_round_trip_is_exact():
    batch = random_batch().sort_by_pt()
    padded = batch.to_padded(n_max=None, dtype=np.float64)
    assert padded.n_truncated == 0
    assert padded.values.shape == (len(batch), batch.n_particles.max(), 4)
    np.testing.assert_array_equal(padded.mask.sum(axis=1), batch.n_particles)
    assert np.all(padded.values[~padded.mask] == 0)
    back = JetBatch.from_padded(padded.values, padded.mask, padded.features)
    for f in ("px", "py", "pz", "energy"):
        assert ak.all(back.particles[f] == batch.particles[f])


def test_truncation_keeps_hardest_and_counts_dropped():
    batch = random_batch()
    n_max = 10
    expected_dropped = int(np.maximum(batch.n_particles - n_max, 0).sum())
    truncated, n_dropped = batch.truncate(n_max)
    assert n_dropped == expected_dropped > 0
    assert truncated.n_particles.max() == n_max
    padded = batch.to_padded(("pt",), n_max=n_max)
    assert padded.n_truncated == expected_dropped
    # kept particles are the hardest: the n-th hardest of the original equals the last kept
    pts = ak.sort(batch.pt, axis=1, ascending=False)
    full = batch.n_particles >= n_max
    np.testing.assert_allclose(
        ak.to_numpy(pts[full][:, n_max - 1]),
        ak.to_numpy(ak.min(truncated.pt[full], axis=1)),
    )
    assert ak.all(ak.num(truncated.pt) == np.minimum(batch.n_particles, n_max))


def test_sort_by_pt_descending_and_permutation_invariant_jets():
    batch = random_batch()
    ordered = batch.sort_by_pt()
    assert ak.all(ak.flatten(ordered.pt[:, 1:] <= ordered.pt[:, :-1]))
    rng = np.random.default_rng(3)
    perm = ak.Array([rng.permutation(n) for n in batch.n_particles])
    shuffled = batch[:]
    shuffled.particles = batch.particles[perm]
    np.testing.assert_allclose(shuffled.jet_mass, batch.jet_mass, rtol=1e-9)
    np.testing.assert_allclose(shuffled.jet_pt, batch.jet_pt, rtol=1e-12)


def test_jet_mass_is_lorentz_invariant():
    batch = random_batch()
    p = batch.particles
    particles = vector.zip({"px": p.px, "py": p.py, "pz": p.pz, "E": p.energy})
    boosted = particles.boost_beta3(vector.obj(x=0.3, y=-0.2, z=0.6))
    boosted_batch = JetBatch.from_p4(boosted.px, boosted.py, boosted.pz, boosted.E)
    np.testing.assert_allclose(boosted_batch.jet_mass, batch.jet_mass, rtol=1e-7, atol=1e-4)


def test_subset_and_concatenate_keep_provenance():
    a, b = random_batch(seed=1), random_batch(seed=2)
    b.source_files = ("b.root",)
    joined = JetBatch.concatenate([a, b])
    assert len(joined) == len(a) + len(b)
    assert joined.source_files == ("a.root", "b.root")
    assert joined.source_of(0) == "a.root:100"
    assert joined.source_of(len(a)) == "b.root:100"
    np.testing.assert_array_equal(joined.label, np.concatenate([a.label, b.label]))
    picked = joined[joined.label == class_index("QCD")]
    assert np.all(picked.label == 0)
    assert len(picked.extra["truth_match"]) == len(picked)


def test_invalid_jets_raise_with_origin_or_are_counted():
    batch = random_batch(n_jets=10)
    px = ak.to_list(batch.particles.px)
    energy = ak.to_list(batch.particles.energy)
    px[4][0] = float("nan")
    energy[6][0] = -1.0
    p = batch.particles
    bad = JetBatch.from_p4(px, p.py, p.pz, energy, source_files=("bad.root",))
    with pytest.raises(JetDataError, match=r"bad.root.*non-finite px.*jet 4"):
        bad.check("bad.root")
    cleaned, report = bad.drop_invalid("bad.root")
    assert len(cleaned) == 8 and report.n_removed == 2
    assert report.removed["non-finite px"] == 1 and report.removed["negative energy"] == 1
    empty = JetBatch.from_p4([[1.0], []], [[0.0], []], [[0.0], []], [[1.0], []])
    with pytest.raises(JetDataError, match="zero particles"):
        empty.check("x.h5")
    untyped = JetBatch.from_p4(*[ak.Array([[]])] * 4)  # no particle anywhere: no dtype
    with pytest.raises(JetDataError, match="1 jet.* with zero particles"):
        untyped.check("y.h5")


def test_constructor_rejects_bad_layouts():
    with pytest.raises(JetDataError, match="four-momentum"):
        JetBatch(ak.zip({"px": [[1.0]], "py": [[1.0]]}))
    with pytest.raises(JetDataError, match="unknown particle fields"):
        JetBatch(ak.zip({f: [[1.0]] for f in ("px", "py", "pz", "energy", "spin")}))
    with pytest.raises(JetDataError, match="labels"):
        JetBatch.from_p4([[1.0]], [[0.0]], [[0.0]], [[1.0]], label=[len(CLASSES)])


def test_one_and_two_particle_jets():
    batch = JetBatch.from_ptetaphi(
        [[100.0], [60.0, 40.0]], [[0.5], [0.0, 0.1]], [[1.0], [0.0, 0.2]]
    )
    np.testing.assert_allclose(batch.jet_pt[0], 100.0)
    assert abs(batch.jet_mass[0]) < 1e-5
    # two massless particles: m^2 = 2 pt1 pt2 (cosh deta - cos dphi)
    expected = np.sqrt(2 * 60 * 40 * (np.cosh(0.1) - np.cos(0.2)))
    np.testing.assert_allclose(batch.jet_mass[1], expected, rtol=1e-9)
    np.testing.assert_allclose(ak.to_list(batch.eta_rel[0]), [0.0], atol=1e-12)


def test_ragged_extras_slice_concatenate():
    """Extras with a varying number of entries per jet (1-3 partons) stay ragged awkward."""
    batch = random_batch(6)
    partons = ak.Array([[1.0], [2.0, 3.0], [4.0, 5.0, 6.0], [7.0], [8.0, 9.0], [10.0]])
    batch.extra = {**batch.extra, "genpart_pt": partons}
    batch = batch[:]  # re-validated
    assert isinstance(batch.extra["genpart_pt"], ak.Array)
    assert isinstance(batch.extra["truth_match"], np.ndarray)
    assert batch[1:3].extra["genpart_pt"].tolist() == [[2.0, 3.0], [4.0, 5.0, 6.0]]
    mask = np.array([True, False, True, False, False, True])
    assert batch[mask].extra["genpart_pt"].tolist() == [[1.0], [4.0, 5.0, 6.0], [10.0]]
    joined = JetBatch.concatenate([batch[:2], batch[2:]])
    assert joined.extra["genpart_pt"].tolist() == partons.tolist()
    np.testing.assert_array_equal(joined.extra["truth_match"], batch.extra["truth_match"])
    # a numpy (n, k) extra joined with a ragged one of the same key becomes ragged
    fixed = batch[:2]
    fixed.extra["genpart_pt"] = np.ones((2, 2))
    mixed = JetBatch.concatenate([fixed, batch[2:]])
    assert ak.num(mixed.extra["genpart_pt"]).tolist() == [2, 2, 3, 1, 2, 1]
    # flat awkward extras become numpy; a wrong length is an error naming the key
    flat = JetBatch(batch.particles, extra={"w": ak.Array(np.arange(6.0))})
    assert isinstance(flat.extra["w"], np.ndarray)
    with pytest.raises(JetDataError, match=r"extra\['genpart_pt'\] has 2 entries for 6 jets"):
        JetBatch(batch.particles, extra={"genpart_pt": partons[:2]})


def test_zero_pt_and_null_particles_are_valid_but_nan_is_not():
    """(0, 0, 0.5, 0.5) and (0, 0, 0, 0) are physical inputs; NaN/inf momenta are not."""
    jets = [[[100.0, 0.0, 0.0, 100.0], [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]]
    columns = [ak.Array([[p[k] for p in jet] for jet in jets]) for k in range(4)]
    batch = JetBatch.from_p4(*columns)
    assert all(not flag.any() for flag in batch.problems().values())
    assert batch.check("soft.root") is batch
    for value in (np.nan, np.inf):
        bad = JetBatch.from_p4(columns[0], columns[1], columns[2] * value, columns[3],
                               source_files=("bad.root",))
        with pytest.raises(JetDataError) as err:
            bad.check("bad.root")
        # the file, the jet entry, the field and the remedy for the API and the CLI
        assert "bad.root: 1 jet(s) with non-finite pz" in str(err.value)
        assert "bad.root:0" in str(err.value)
        assert "skip_invalid=True" in str(err.value) and "--skip-invalid" in str(err.value)


def test_jet_of_only_zero_pt_particles_is_invalid_and_counted():
    """A jet whose particles all have pT = 0 has no axis (pt_rel = 0 / 0): refused or counted,
    while a jet with one real particle beside them is valid."""
    px = ak.Array([[0.0, 0.0], [50.0, 0.0]])
    zeros = ak.zeros_like(px)
    batch = JetBatch.from_p4(px, zeros, ak.Array([[0.5, 0.0], [0.0, 0.5]]),
                             ak.Array([[0.5, 0.0], [50.0, 0.5]]), source_files=("beam.root",))
    assert batch.problems()["no particle with pT > 0"].tolist() == [True, False]
    with pytest.raises(JetDataError, match=r"beam.root: 1 jet\(s\) with no particle with pT > 0"):
        batch.check("beam.root")
    kept, report = batch.drop_invalid("beam.root")
    assert len(kept) == 1 and report.n_removed == 1
    assert np.isfinite(ak.to_numpy(ak.flatten(kept.pt_rel))).all()


def test_empty_batch():
    batch = random_batch(5)[:0]
    assert len(batch) == 0 and batch.check() is batch
    assert batch.jet_pt.shape == (0,) and batch.to_padded().values.shape == (0, 0, 4)
    assert len(JetBatch.concatenate([batch, batch])) == 0
