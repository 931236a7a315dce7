"""JetGPT at constituent level (jetfm.models.jetgpt_constituents): the jets <-> sequences map,
its frame, sampling with overflow at n_max, files and bad input."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch

from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import class_index
from jetfm.models.jetgpt import JetGPT, JetGPTConfig, save_jetgpt
from jetfm.models.jetgpt_constituents import (
    META_KEY,
    ConstituentPreprocessing,
    load_constituent_model,
    sample_jets,
)

CLASSES = ["Tbqq", "QCD"]


def _jets(n: int = 40, seed: int = 0, n_range: tuple[int, int] = (1, 30)) -> JetBatch:
    """Massive particles (pion mass) in unordered pT around a random axis per jet."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(*n_range, size=n)
    total = int(counts.sum())
    axis_eta = np.repeat(rng.uniform(-2, 2, n), counts)
    axis_phi = np.repeat(rng.uniform(-np.pi, np.pi, n), counts)
    pt = rng.lognormal(1.0, 1.5, total)
    eta = axis_eta + rng.normal(0, 0.3, total)
    phi = axis_phi + rng.normal(0, 0.3, total)

    def ragged(x: np.ndarray) -> ak.Array:
        return ak.unflatten(x, counts)

    label = np.array([class_index(CLASSES[i % 2]) for i in range(n)])
    return JetBatch.from_ptetaphi(ragged(pt), ragged(eta), ragged(phi), 0.1396, label=label)


def _hardest_p3(batch: JetBatch, n_max: int) -> list[np.ndarray]:
    """Independent reference: per jet the (px, py, pz) of its n_max hardest particles."""
    out = []
    for i in range(len(batch)):
        p = np.stack([ak.to_numpy(batch.particles[f][i]) for f in ("px", "py", "pz")], axis=1)
        order = np.argsort(-np.hypot(p[:, 0], p[:, 1]), kind="stable")
        out.append(p[order[:n_max]])
    return out


def test_encode_decode_round_trip_of_the_kept_particles() -> None:
    jets, n_max = _jets(), 12
    prep = ConstituentPreprocessing.fit(jets, CLASSES, n_max)
    x, mask, condition, reports = prep.encode(jets)
    assert x.dtype == np.float32 and x.shape == (len(jets), n_max, 3)
    truncated = int(np.maximum(jets.n_particles - n_max, 0).sum())
    assert f"softest beyond n_max: {truncated}" in str(reports[1])
    decoded = prep.decode(x, mask, condition, jets.jet_eta, jets.jet_phi)
    assert np.array_equal(decoded.label, jets.label)
    for i, want in enumerate(_hardest_p3(jets, n_max)):
        got = np.stack([ak.to_numpy(decoded.particles[f][i]) for f in ("px", "py", "pz")], 1)
        assert got.shape == want.shape
        scale = np.linalg.norm(want, axis=1, keepdims=True)
        np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-5)
    # massless: E = |p|
    e = ak.to_numpy(ak.flatten(decoded.particles.energy))
    p = np.sqrt(sum(ak.to_numpy(ak.flatten(decoded.particles[f])) ** 2
                    for f in ("px", "py", "pz")))
    np.testing.assert_allclose(e, p, rtol=1e-12)


def test_sequences_are_pt_ordered_and_standardised() -> None:
    jets = _jets(200, seed=1)
    prep = ConstituentPreprocessing.fit(jets, CLASSES, 16)
    x, mask, condition, _ = prep.encode(jets)
    n = mask.sum(axis=1)
    assert np.array_equal(mask, np.arange(16)[None] < n[:, None])  # real particles first
    assert np.array_equal(n, np.minimum(jets.n_particles, 16))
    assert np.all(np.diff(x[..., 0], axis=1)[mask[:, 1:]] <= 0)  # hardest first
    kept = x[mask].astype(np.float64)
    np.testing.assert_allclose(kept.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(kept.std(axis=0), 1, atol=1e-5)
    assert np.array_equal(condition, np.arange(len(jets)) % 2)  # position in CLASSES


def test_padding_nan_and_zero_pt_never_reach_the_model() -> None:
    jets = _jets(6, seed=2, n_range=(3, 6))
    particles = ak.to_list(jets.particles)
    particles[0][1]["px"] = float("nan")  # a broken particle
    particles[1][0].update(px=0.0, py=0.0)  # pT = 0: no direction
    bad = JetBatch(ak.Array(particles), label=jets.label)
    prep = ConstituentPreprocessing.fit(jets, CLASSES, 8)
    x, mask, condition, reports = prep.encode(bad)
    # the NaN particle is dropped, and it makes its jet's axis (the particle sum) undefined,
    # so the angles of the jet's other particles are too: the whole jet goes, counted
    n = jets.n_particles
    assert "non-finite pt: 1" in str(reports[0])
    assert "outside pt window: 1" in str(reports[0])  # the pT = 0 particle alone
    assert reports[0].n_removed == n[0] + 1  # the rest of jet 0: non-finite angles
    assert np.array_equal(mask.sum(axis=1), np.r_[0, n[1] - 1, n[2:]])
    assert np.isfinite(x).all() and not x[~mask].any()  # padding is 0, nothing NaN
    model = JetGPT(JetGPTConfig(**prep.model_fields(), dim=8, n_blocks=1, n_heads=2,
                                n_mixture=2))
    loss = model.loss(torch.as_tensor(x), torch.as_tensor(mask), torch.as_tensor(condition))
    assert torch.isfinite(loss["loss"])
    # jets whose particles are all cut (jet 0 and now jet 2) are dropped for training, counted
    particles[2] = [dict(p, px=0.0, py=0.0) for p in particles[2]]
    x, mask, condition, reports = prep.encode(JetBatch(ak.Array(particles), label=jets.label),
                                              drop_empty=True)
    assert len(x) == len(condition) == 4 and mask.any(axis=1).all()
    assert np.array_equal(condition, np.r_[1, 1, 0, 1])  # jets 1, 3, 4, 5
    assert "no particle kept (dropped): 2" in str(reports[-1])


def test_frame_is_the_massless_hardest_n_max_and_ignores_the_axis() -> None:
    jets = _jets(30, seed=3)
    prep = ConstituentPreprocessing.fit(jets, CLASSES, 10)
    framed = prep.frame(jets)
    assert np.array_equal(framed.label, jets.label)
    for i, p3 in enumerate(_hardest_p3(jets, 10)):  # mass of the massless particle sum
        e = np.linalg.norm(p3, axis=1).sum()
        m = np.sqrt(max(e ** 2 - np.sum(p3.sum(axis=0) ** 2), 0.0))
        assert framed.jet_mass[i] == pytest.approx(m, rel=1e-4, abs=1e-4)
        assert framed.jet_pt[i] == pytest.approx(np.hypot(*p3.sum(axis=0)[:2]), rel=1e-5)
    # relative to the axis: a rotation in phi of the input changes no particle (they are put
    # around phi = 0), a longitudinal boost of massless input changes no jet mass
    rotated = prep.frame(JetBatch.from_ptetaphi(jets.pt, jets.eta, jets.phi + 2.0, jets.mass,
                                                label=jets.label))
    for f in ("px", "py", "pz", "energy"):
        a, b = (ak.to_numpy(ak.flatten(j.particles[f])) for j in (framed, rotated))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    boosted = prep.frame(JetBatch.from_ptetaphi(jets.pt, jets.eta + 0.9, jets.phi, 0.0))
    np.testing.assert_allclose(boosted.jet_mass, framed.jet_mass, rtol=1e-4, atol=1e-4)


def _model(prep: ConstituentPreprocessing, split_bias: float | None = None) -> JetGPT:
    torch.manual_seed(0)
    model = JetGPT(JetGPTConfig(**prep.model_fields(), dim=8, n_blocks=1, n_heads=2,
                                n_mixture=2)).eval()
    if split_bias is not None:
        with torch.no_grad():
            model.out.weight[0].zero_()
            model.out.bias[0] = split_bias
    return model


def test_sampling_cuts_and_counts_overflow_at_n_max() -> None:
    prep = ConstituentPreprocessing.fit(_jets(), CLASSES, 5)
    jets, stats = sample_jets(_model(prep, split_bias=50.0), prep, 7, "QCD", seed=1)
    assert stats["n_overflow"] == 7  # always continues: every sequence is cut
    assert np.array_equal(jets.n_particles, np.full(7, 5))
    assert np.all(jets.label == class_index("QCD")) and stats["jets_per_second"] > 0
    pt = ak.to_numpy(jets.pt)
    assert np.all(np.diff(pt, axis=1) <= 0)  # decoded jets are pT-ordered
    jets, stats = sample_jets(_model(prep, split_bias=-50.0), prep, 7, "Tbqq", seed=1)
    assert stats["n_overflow"] == 0 and np.array_equal(jets.n_particles, np.ones(7))
    again, _ = sample_jets(_model(prep, split_bias=-50.0), prep, 7, "Tbqq", seed=1)
    assert ak.all(again.particles.px == jets.particles.px)  # seeded


def test_file_round_trip_and_bad_input(tmp_path) -> None:
    jets = _jets()
    prep = ConstituentPreprocessing.fit(jets, CLASSES, 8, pt_min=0.5)
    model = _model(prep)
    save_jetgpt(tmp_path / "m.safetensors", model, {META_KEY: prep.to_dict()})
    loaded, prep2 = load_constituent_model(tmp_path / "m.safetensors")
    assert prep2 == prep
    x, mask, condition, _ = prep.encode(jets)
    args = (torch.as_tensor(x), torch.as_tensor(mask), torch.as_tensor(condition))
    assert torch.equal(loaded.log_likelihood(*args), model.log_likelihood(*args))
    save_jetgpt(tmp_path / "event.safetensors", model)
    with pytest.raises(ValueError, match="constituent preprocessing"):
        load_constituent_model(tmp_path / "event.safetensors")
    other = JetBatch(jets.particles, label=np.full(len(jets), class_index("Wqq")))
    with pytest.raises(JetDataError, match="Wqq"):
        prep.encode(other)
    with pytest.raises(ValueError, match="classes"):
        ConstituentPreprocessing(["Tbqq", "top"])
    with pytest.raises(ValueError, match="n_max"):
        ConstituentPreprocessing(CLASSES, n_max=0)
    with pytest.raises(ValueError, match="non-finite"):
        prep.decode(np.full((1, 2, 3), np.nan), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="class 'Wqq'"):
        sample_jets(model, prep, 2, "Wqq")
