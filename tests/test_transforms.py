"""Declarative preprocessing: cuts counted, invertible, serialisable."""

import json

import awkward as ak
import numpy as np
import pytest
from io_jets import random_jets

from jetfm.data import JetBatch
from jetfm.data.transforms import Preprocessing, omnijet_preprocessing


def test_apply_invert_round_trip_and_counts():
    batch = random_jets(40, seed=1, n_max=60)
    prep = omnijet_preprocessing(n_max=30)
    for feature in prep.features[1:]:
        feature.min, feature.max = -0.2, 0.2  # a tight window so that the cut bites
    values, mask, reports = prep.apply(batch)
    cuts, truncation = reports
    # independent count of particles outside |eta_rel|, |phi_rel| < 0.2
    inside = (np.abs(batch.eta_rel) < 0.2) & (np.abs(batch.phi_rel) < 0.2)
    n_inside = ak.to_numpy(ak.sum(inside, axis=1))
    assert cuts.n_removed == int(ak.sum(batch.n_particles) - n_inside.sum()) > 0
    assert truncation.n_removed == int(np.maximum(n_inside - 30, 0).sum())
    np.testing.assert_array_equal(mask.sum(1), np.minimum(n_inside, 30))
    back = prep.invert(values, mask)
    # the hardest kept particles come back with their pt and relative angles
    ordered = batch.sort_by_pt()
    keep = (np.abs(ordered.eta_rel) < 0.2) & (np.abs(ordered.phi_rel) < 0.2)
    ref_pt = ak.to_numpy(ak.flatten(ordered.pt[keep][:, :30]))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(back.pt)), ref_pt, rtol=1e-5)
    ref_eta = ak.to_numpy(ak.flatten(ordered.eta_rel[keep][:, :30]))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(back.eta)), ref_eta, atol=1e-5)


def test_jet_mass_survives_moving_the_axis():
    # massless particles: jet mass does not depend on where the jet axis sits
    batch = JetBatch.from_ptetaphi([[100.0, 50.0, 20.0]], [[1.3, 1.5, 1.1]], [[2.0, 2.2, 1.9]])
    prep = omnijet_preprocessing()
    values, mask, _ = prep.apply(batch)
    back = prep.invert(values, mask)
    np.testing.assert_allclose(back.jet_mass, batch.jet_mass, rtol=1e-4)


def test_fit_standardises_and_serialises_as_plain_data():
    batch = random_jets(60, seed=2)
    prep = omnijet_preprocessing().fit(batch)
    values, mask, _ = prep.apply(batch)
    np.testing.assert_allclose(values[mask].mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(values[mask].std(0), 1.0, atol=1e-3)
    again = Preprocessing.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again == prep


def three_prong_jet() -> tuple[JetBatch, np.ndarray]:
    """One jet of three well separated clusters (pT sums 300 > 200 > 100 GeV, the hardest
    particle of the jet in the *second* hardest cluster), and each particle's cluster rank."""
    centres = [(0.0, 0.0), (0.4, 0.3), (-0.3, 0.4)]
    pts = [[90.0, 80.0, 70.0, 60.0], [150.0, 30.0, 20.0], [60.0, 25.0, 15.0]]
    rng = np.random.default_rng(0)
    pt, eta, phi, rank = [], [], [], []
    for r, ((e, p), cluster) in enumerate(zip(centres, pts, strict=True)):
        for value in cluster:
            pt.append(value)
            eta.append(1.0 + e + rng.normal(0, 0.01))
            phi.append(0.5 + p + rng.normal(0, 0.01))
            rank.append(r)
    return JetBatch.from_ptetaphi([pt], [eta], [phi]), np.array(rank)


def test_subjet_order_visits_one_prong_after_the_other():
    """The kept particles come grouped by exclusive-kt subjet, subjets by pT sum, pT order
    inside: the known clusters of a constructed jet, in the known order."""
    batch, rank = three_prong_jet()
    prep = omnijet_preprocessing(n_max=16, subjet_order=3)
    values, mask, _ = prep.apply(batch)
    back = prep.invert(values, mask)
    pt = ak.to_numpy(back.pt[0])
    truth_pt = ak.to_numpy(batch.pt[0])
    expected = np.concatenate([np.sort(truth_pt[rank == r])[::-1] for r in range(3)])
    np.testing.assert_allclose(pt, expected, rtol=1e-5)
    # the same particles as the pT order, only permuted; the mask is the same
    plain, plain_mask, _ = omnijet_preprocessing(n_max=16).apply(batch)
    np.testing.assert_array_equal(plain_mask, mask)
    np.testing.assert_allclose(np.sort(plain[0, :, 0]), np.sort(values[0, :, 0]))


def test_subjet_order_is_a_permutation_of_the_pt_order_for_every_jet():
    batch = random_jets(30, seed=5, n_max=40)
    a, mask_a, _ = omnijet_preprocessing(n_max=20).apply(batch)
    b, mask_b, _ = omnijet_preprocessing(n_max=20, subjet_order=3).apply(batch)
    np.testing.assert_array_equal(mask_a, mask_b)
    for i in range(len(batch)):  # the same set of particles, row by row
        rows_a = a[i][mask_a[i]].tolist()
        rows_b = b[i][mask_b[i]].tolist()
        assert sorted(rows_a) == sorted(rows_b)


def test_subjet_order_is_recorded_only_when_set():
    """pT-ordered preprocessing serialises as before (tokenizer fingerprints unchanged)."""
    plain = omnijet_preprocessing(n_max=8)
    assert "subjet_order" not in plain.to_dict()
    grouped = omnijet_preprocessing(n_max=8, subjet_order=3)
    assert grouped.to_dict()["subjet_order"] == 3
    assert Preprocessing.from_dict(json.loads(json.dumps(grouped.to_dict()))) == grouped
    assert Preprocessing.from_dict(plain.to_dict()) == plain
    with pytest.raises(ValueError, match="subjet_order"):
        omnijet_preprocessing(n_max=8, subjet_order=-1)


# ------------------------------------------------------------------------------ subjet frame
def test_subjet_frame_puts_leaders_first_and_followers_relative_to_them():
    """subjet_frame: the hardest particle of each subjet (its leader) comes first, by subjet
    rank, labelled k: the first unchanged, the others' angles minus the first's; then the
    other particles of subjet k, labelled 3 + k, with angles minus their leader's (log pT
    absolute throughout). Inverting gives the same particles as plain subjet order (float32
    rounding)."""
    batch, rank = three_prong_jet()
    prep = omnijet_preprocessing(n_max=16, subjet_order=3, subjet_frame=True)
    raw, mask, _ = prep.raw(batch)
    labels = raw[0, mask[0], 3]
    # clusters of 4, 3, 3 particles, hardest pT sum first
    assert labels.tolist() == [0, 1, 2, 3, 3, 3, 4, 4, 5, 5]
    grouped, _, _ = omnijet_preprocessing(n_max=16, subjet_order=3).raw(batch)
    g = grouped[0, :10, :3]  # subjet order: leaders at 0, 4, 7
    leaders, followers = g[[0, 4, 7]], g[[1, 2, 3, 5, 6, 8, 9]]
    reference = g[[0, 0, 0, 4, 4, 7, 7]]
    angles = [0, 1, 1]  # log pT is not relative
    np.testing.assert_allclose(raw[0, :3, :3],
                               leaders - [[0, 0, 0], leaders[0] * angles, leaders[0] * angles],
                               atol=1e-6)
    np.testing.assert_allclose(raw[0, 3:10, :3], followers - reference * angles, atol=1e-6)
    values, mask, _ = prep.apply(batch)
    assert set(np.unique(values[mask][:, 3])) == {0.0, 100.0, 200.0, 300.0, 400.0, 500.0}
    back = prep.invert(values, mask)
    order = [0, 4, 7, 1, 2, 3, 5, 6, 8, 9]
    plain = omnijet_preprocessing(n_max=16, subjet_order=3)
    ref = plain.invert(*plain.apply(batch)[:2])
    for name in ("pt", "eta", "phi"):
        np.testing.assert_allclose(ak.to_numpy(getattr(back, name)[0]),
                                   ak.to_numpy(getattr(ref, name)[0])[order],
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prep.pt(values, mask)[0, :10], ak.to_numpy(ref.pt[0])[order],
                               rtol=1e-5)


def test_subjet_frame_inverts_generated_sequences_by_label_in_any_order():
    """A generated sequence may order particles anyhow and lack a leader: each follower of
    subjet k goes to the first leader labelled k (itself placed relative to the first leader
    labelled 0); one whose reference is missing stays relative to the jet axis. log pT is
    absolute throughout."""
    prep = omnijet_preprocessing(n_max=7, subjet_order=3, subjet_frame=True)
    raw = np.array([[[np.log(0.5), 0.01, -0.02, 3.0],    # follower of subjet 0 (before it)
                     [np.log(100.0), 0.1, 0.2, 0.0],     # leader of subjet 0
                     [np.log(2.0), 0.05, 0.0, 5.0],      # follower of subjet 2: no leader 2
                     [np.log(40.0), -0.3, 0.1, 0.0],     # a second leader 0: not referenced
                     [np.log(0.25), 0.0, 0.03, 3.0],     # follower of subjet 0
                     [np.log(0.5), 0.2, -0.1, 1.0],      # leader 1: relative to leader 0
                     [np.log(0.1), 0.02, 0.0, 4.0]]])    # follower of subjet 1
    shift = np.array([f.shift for f in prep.features])
    scale = np.array([f.scale for f in prep.features])
    mask = np.ones((1, 7), dtype=bool)
    jets = prep.invert(((raw - shift) / scale).astype(np.float32), mask)
    np.testing.assert_allclose(ak.to_numpy(jets.pt[0]),
                               [0.5, 100.0, 2.0, 40.0, 0.25, 0.5, 0.1], rtol=1e-5)
    np.testing.assert_allclose(ak.to_numpy(jets.eta[0]),
                               [0.11, 0.1, 0.05, -0.3, 0.1, 0.3, 0.32], atol=1e-6)
    np.testing.assert_allclose(ak.to_numpy(jets.phi[0]),
                               [0.18, 0.2, 0.0, 0.1, 0.23, 0.1, 0.1], atol=1e-6)


def test_subjet_frame_is_recorded_only_when_set_and_checked():
    frame = omnijet_preprocessing(n_max=8, subjet_order=3, subjet_frame=True)
    assert frame.to_dict()["subjet_frame"] is True
    assert Preprocessing.from_dict(json.loads(json.dumps(frame.to_dict()))) == frame
    assert "subjet_frame" not in omnijet_preprocessing(n_max=8, subjet_order=3).to_dict()
    with pytest.raises(ValueError, match="subjet_frame: true needs subjet_order >= 1"):
        omnijet_preprocessing(n_max=8, subjet_frame=True)
    with pytest.raises(ValueError, match="subjet_frame: 'yes' is not true or false"):
        omnijet_preprocessing(n_max=8, subjet_order=3, subjet_frame="yes")
    with pytest.raises(ValueError, match="only with subjet_frame"):
        Preprocessing(frame.features, 8, 3)
    # fit() standardises the features but leaves the labels 1 / SUBJET_LABEL_SCALE apart
    fitted = omnijet_preprocessing(n_max=20, subjet_order=3, subjet_frame=True).fit(
        random_jets(30, seed=3, n_max=30))
    assert fitted.features[3].scale == 0.01
    assert fitted.features[1].scale != 1 / 3


def test_standardise_inverts_unstandardise_and_labels_come_back_as_integers():
    fitted = omnijet_preprocessing(n_max=20, subjet_order=3, subjet_frame=True).fit(
        random_jets(30, seed=3, n_max=30))
    values, mask, _ = fitted.apply(random_jets(10, seed=4, n_max=30))
    raw, _, _ = fitted.raw(random_jets(10, seed=4, n_max=30))
    np.testing.assert_allclose(fitted.unstandardise(values)[mask], raw[mask], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(fitted.standardise(fitted.unstandardise(values)), values,
                               atol=1e-5)
    labels = fitted.subjet_labels(values)[mask]
    assert np.array_equal(labels, raw[..., 3][mask].astype(np.int64))
    assert set(np.unique(labels)) <= set(range(6)) and {0, 1, 2} <= set(np.unique(labels))
    with pytest.raises(ValueError, match="only with subjet_frame"):
        omnijet_preprocessing(n_max=8).subjet_labels(values)


def test_a_jet_that_loses_every_particle_is_counted():
    jets = random_jets(5, seed=2, counts=np.array([3, 4, 2, 5, 3]))
    prep = omnijet_preprocessing(n_max=8, pt_min=1e6)  # no particle passes: every jet empty
    _, mask, reports = prep.apply(jets)
    assert not mask.any()
    (report,) = [r for r in reports if r.name == "jets with a particle"]
    assert (report.n_before, report.n_after) == (5, 0)
    _, _, fine = omnijet_preprocessing(n_max=8).apply(jets)
    assert all(r.name != "jets with a particle" for r in fine)  # said only when it happens
