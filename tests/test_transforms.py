"""Declarative preprocessing: cuts counted, invertible, serialisable."""

import json

import awkward as ak
import numpy as np
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
