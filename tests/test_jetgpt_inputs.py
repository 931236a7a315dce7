"""JetGPT's event representation (jetfm.models.jetgpt_inputs)."""

from __future__ import annotations

import numpy as np
import pytest
from toy_events import toy_events

from jetfm.data.events import MUON_MASS, Events
from jetfm.models.jetgpt import JetGPT, JetGPTConfig
from jetfm.models.jetgpt_inputs import EVENT_MODEL_FIELDS, EventPreprocessing
from jetfm.physics.kinematics import wrap_phi


def test_round_trip_is_exact_up_to_the_azimuth() -> None:
    """decode(encode(events)) is the events rotated so the leading muon sits at phi = 0."""
    events = toy_events(500, seed=1)
    prep = EventPreprocessing.fit(events)
    x, mask, report = prep.encode(events)
    assert report == {"jets raised to the mass floor": 0}
    back = prep.decode(x, mask)
    rotated_mu = events.muons.copy()
    rotated_jets = events.jets.copy()
    phi0 = events.muons[:, :1, 2]
    rotated_mu[..., 2] = wrap_phi(rotated_mu[..., 2] - phi0)
    real = np.arange(events.max_jets)[None] < events.n_jets[:, None]
    rotated_jets[..., 2] = np.where(real, wrap_phi(rotated_jets[..., 2] - phi0), 0.0)
    np.testing.assert_array_equal(back.n_jets, events.n_jets)
    np.testing.assert_allclose(back.muons, rotated_mu, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(back.jets, rotated_jets, rtol=1e-5, atol=2e-5)


def test_standardisation_and_fixed_components() -> None:
    events = toy_events(2000, seed=2)
    prep = EventPreprocessing.fit(events)
    x, mask, _ = prep.encode(events)
    jets = x[:, 2:][mask[:, 2:]]
    np.testing.assert_allclose(jets[:, [0, 2, 3]].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(jets[:, [0, 2, 3]].std(0), 1, atol=1e-4)
    assert np.all(x[:, 0, 1] == 0) and np.all(x[:, :2, 3] == 0)  # given components
    assert np.abs(x[..., 1]).max() <= np.pi  # phi is not standardised
    assert np.all(x[~mask] == 0)
    # log(pT - 20 GeV) for jets: decoded jets are above the cut by construction
    y = x.copy()
    y[:, 2:, 0] = np.where(mask[:, 2:], -30.0, 0.0)
    assert np.all(prep.decode(y, mask).jets[..., 0][mask[:, 2:]] > 20.0)


def test_decode_orders_in_pt_and_sets_muon_masses() -> None:
    events = toy_events(200, seed=3)
    prep = EventPreprocessing.fit(events)
    x, mask, _ = prep.encode(events)
    x[:, [2, 3]] = x[:, [3, 2]]  # swap the first two jets: out of pT order
    x[:, [0, 1], 0] = x[:, [1, 0], 0]
    back = prep.decode(x, mask, rng=np.random.default_rng(0))
    assert isinstance(back, Events)  # its checks include the pT ordering
    assert np.all(back.muons[..., 3] == MUON_MASS)


def test_model_samples_decode_to_valid_events() -> None:
    import torch

    events = toy_events(300, seed=4)
    prep = EventPreprocessing.fit(events)
    torch.manual_seed(0)
    model = JetGPT(JetGPTConfig(**EVENT_MODEL_FIELDS, dim=16, n_blocks=1, n_heads=2,
                                n_mixture=3)).eval()
    out = model.sample(200, max_objects=8, seed=1)
    keep = ~out.overflow
    back = prep.decode(out.x[keep].numpy(), out.mask[keep].numpy())
    assert len(back) == int(keep.sum()) and back.max_jets == 6


def test_bad_inputs() -> None:
    events = toy_events(50, seed=5)
    with pytest.raises(ValueError, match="pT cut"):
        EventPreprocessing(jet_pt_min=500.0).raw(events)
    with pytest.raises(ValueError, match="no events"):
        EventPreprocessing.fit(events[np.zeros(50, bool)])
    prep = EventPreprocessing.fit(events)
    x, mask, _ = prep.encode(events)
    x[np.flatnonzero(mask[:, 2])[0], 2, 0] = np.nan  # an event with a jet
    with pytest.raises(ValueError, match="non-finite"):
        prep.decode(x, mask)
    with pytest.raises(ValueError, match="two muons"):
        prep.decode(x, np.zeros_like(mask))
    with pytest.raises(ValueError, match="std"):
        EventPreprocessing(std=[[0.0] * 4] * 3)
