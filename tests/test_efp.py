"""EFPs, FPD, KPD and W1-EFP of :mod:`jetfm.metrics.efp` against jetnet itself and physics.

The reference numbers come from jetnet 0.2.5 / EnergyFlow 1.4.0 on a fixed input
(``tests/fixtures/make_jetnet_reference.py`` made ``jetnet_reference.npz``). Where jetnet draws
random batches, jetfm draws the same ones from the same seed, so the numbers agree to float
rounding. The FPD is a fit through Frechet distances of 36 strongly correlated EFPs, whose
matrix square root is ill-conditioned: perturbing the EFPs by 1e-15 (relative) moves the FPD
by ~2e-10 and its fit error by ~2e-6 (relative standard deviations over 6 perturbations), so
rounding differences between numpy 1.26 + its BLAS (jetnet's environment) and jetfm's are
compared with tolerances 1e-7 and 1e-4; everything else agrees to <= 1e-10.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from jetfm.data.batch import JetBatch
from jetfm.metrics import efp

FIXTURE = Path(__file__).parent / "fixtures" / "jetnet_reference.npz"


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as f:
        out = {k: f[k] for k in f.files}
    for k in ("real", "gen"):
        out[k] = out[k].astype(np.float64)  # as the script did before computing
    return out


def _graphs(text: np.ndarray) -> tuple:
    return tuple(tuple(tuple(e) for e in g) for g in json.loads(str(text)))


def _batch(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, counts: list[int]) -> JetBatch:
    return JetBatch.from_ptetaphi(*(ak.unflatten(x, counts) for x in (pt, eta, phi)))


def _n_vertices(graph: tuple) -> int:
    return len({v for e in graph for v in e}) or 1


def _brute_force(graph: tuple, eta: np.ndarray, phi: np.ndarray, z: np.ndarray) -> float:
    """EFP of one jet straight from its definition (arXiv:1712.07124 Eq. 2.8), one einsum
    without the module's elimination, theta from the (wrapped) distances."""
    d_phi = np.abs(phi[:, None] - phi[None, :])
    theta = np.sqrt((eta[:, None] - eta[None, :]) ** 2 + (np.pi - np.abs(d_phi - np.pi)) ** 2)
    n = _n_vertices(graph)
    letters = "bcdefghijk"
    terms = [letters[v] for v in range(n)] + [letters[a] + letters[b] for a, b in graph]
    return float(np.einsum(",".join(terms) + "->", *([z] * n + [theta] * len(graph))))


def test_graph_selections_are_jetnets(ref):
    assert efp.FPD_KPD_GRAPHS == _graphs(ref["graphs_fpd"]) and len(efp.FPD_KPD_GRAPHS) == 36
    assert efp.W1EFP_GRAPHS == _graphs(ref["graphs_w1"]) and len(efp.W1EFP_GRAPHS) == 5
    assert [efp.FPD_KPD_GRAPHS[i] for i in efp.W1EFP_INDICES] == list(efp.W1EFP_GRAPHS)
    # jetnet's defaults (gen_metrics.py of jetnet 0.2.5)
    fpd = inspect.signature(efp.jetnet_fpd).parameters
    assert [fpd[k].default for k in ("min_samples", "max_samples", "num_batches", "num_points",
                                     "normalise", "seed")] == [20_000, 50_000, 20, 10, True, 42]
    kpd = inspect.signature(efp.jetnet_kpd).parameters
    assert [kpd[k].default for k in ("num_batches", "batch_size", "seed")] == [10, 5_000, 42]
    w1 = inspect.signature(efp.w1efp).parameters
    assert [w1[k].default for k in ("num_eval_samples", "num_batches")] == [50_000, 5]


@pytest.mark.parametrize("sample", ["real", "gen"])
def test_efps_equal_jetnets(ref, sample):
    jets, mask = ref[sample], ref[f"{sample}_mask"]
    got = efp.jetnet_efps(jets, graphs=efp.FPD_KPD_GRAPHS)  # zero padding, as jetnet
    np.testing.assert_allclose(got, ref[f"efps_{sample}"], rtol=1e-12, atol=0)
    masked = efp.efps(jets[..., 0], jets[..., 1], jets[..., 2], mask, graphs=efp.FPD_KPD_GRAPHS)
    np.testing.assert_allclose(masked, ref[f"efps_{sample}"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(efp.jetnet_efps(jets), ref[f"w1efps_{sample}"], rtol=1e-12)
    assert np.ptp(got, axis=0)[1:].min() > 0  # every non-trivial EFP varies between jets


def test_efps_invariant_under_permutation_and_padding(ref):
    rng = np.random.default_rng(1)
    jets, mask = ref["real"][:60], ref["real_mask"][:60]
    expected = efp.jetnet_efps(jets, mask, graphs=efp.FPD_KPD_GRAPHS)
    order = np.argsort(rng.random(mask.shape), axis=1)  # particles shuffled in every jet
    shuffled = np.take_along_axis(jets, order[..., None], axis=1)
    shuffled_mask = np.take_along_axis(mask, order, axis=1)
    pad = rng.normal(0.0, 5.0, (60, 9, 3))  # 9 more padded slots with garbage and NaN
    pad[::3, 0] = np.nan
    padded = np.concatenate([shuffled, pad], axis=1)
    padded_mask = np.concatenate([shuffled_mask, np.zeros((60, 9), dtype=bool)], axis=1)
    got = efp.jetnet_efps(padded, padded_mask, graphs=efp.FPD_KPD_GRAPHS)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_efps_scale_as_pt_rel_to_the_number_of_vertices(ref):
    """jetnet's EFPs are not normalised (energyflow normed=None): z_i = pt_rel_i, so an EFP
    with N vertices scales as lambda^N; the d = 0 one is sum pt_rel (1 for normalised jets)."""
    jets, mask = ref["gen"][:40], ref["gen_mask"][:40]
    base = efp.jetnet_efps(jets, mask, graphs=efp.FPD_KPD_GRAPHS)
    scaled = jets.copy()
    scaled[..., 2] *= 1.7
    powers = np.array([_n_vertices(g) for g in efp.FPD_KPD_GRAPHS])
    np.testing.assert_allclose(efp.jetnet_efps(scaled, mask, graphs=efp.FPD_KPD_GRAPHS),
                               base * 1.7**powers, rtol=1e-12)
    np.testing.assert_allclose(base[:, 0], jets[..., 2].sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(base[:, 0], 1.0, atol=1e-6)  # the fixture's pt_rel sum to 1


def test_batch_efps_use_normalised_pt_and_relative_angles():
    """From a JetBatch: pt_rel = pT / jet pT, so scaling every momentum (and boosting along
    the beam, rotating in phi) leaves the EFPs unchanged; they equal the padded arrays'."""
    rng = np.random.default_rng(2)
    counts = rng.integers(2, 12, 25)
    n = int(counts.sum())
    pt, eta = rng.exponential(20.0, n) + 1.0, rng.normal(0.5, 0.2, n)
    phi = np.angle(np.exp(1j * (3.0 + rng.normal(0.0, 0.2, n))))  # jets across phi = +-pi
    batch = _batch(pt, eta, phi, counts)
    moved = _batch(3.0 * pt, eta - 1.2, np.angle(np.exp(1j * (phi + 2.0))), counts)
    got = efp.batch_efps(batch)
    np.testing.assert_allclose(efp.batch_efps(moved), got, rtol=1e-9)
    padded = batch.to_padded(("eta_rel", "phi_rel", "pt_rel"), dtype=np.float64)
    np.testing.assert_allclose(got, efp.jetnet_efps(padded.values, padded.mask,
                                                    graphs=efp.FPD_KPD_GRAPHS), rtol=1e-12)
    np.testing.assert_allclose(got[:, 0], ak.to_numpy(ak.sum(batch.pt_rel, axis=1)), rtol=1e-12)


@pytest.mark.parametrize("graph", [
    ((0, 1),), ((0, 1), (0, 1), (0, 2)),  # trees (leaf elimination)
    ((0, 1), (1, 2), (0, 2)), ((0, 1), (1, 2), (2, 3), (3, 0)),  # cycles (matrix chain)
    ((0, 1), (1, 2), (2, 3), (3, 4), (4, 0)), ((0, 1), (1, 2), (0, 2), (2, 3)),
    ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)),  # K4: general einsum
    ((0, 1), (0, 2), (1, 2), (3, 4)),  # composite: product of components
])
def test_efps_equal_the_definition(graph):
    rng = np.random.default_rng(3)
    eta, phi, z = rng.normal(0, 0.3, (3, 6)), rng.uniform(-np.pi, np.pi, (3, 6)), rng.random((3, 6))
    got = efp.efps(eta, phi, z, graphs=[graph])[:, 0]
    expected = [_brute_force(graph, eta[i], phi[i], z[i]) for i in range(3)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_two_and_three_particle_efps_and_phi_wrapping():
    eta = np.array([[0.1, -0.2, 0.3]])
    phi = np.array([[3.0, -3.0, 0.1]])  # particles 0 and 1 are 2 pi - 6 apart in phi
    z = np.array([[0.5, 0.3, 0.4]])
    t01 = np.hypot(0.3, 2 * np.pi - 6.0)
    t02, t12 = np.hypot(0.2, 2.9), np.hypot(0.5, 3.1)
    got = efp.efps(eta, phi, z, graphs=[(), ((0, 1),), ((0, 1), (1, 2), (0, 2))])[0]
    line = 2 * (0.15 * t01 + 0.2 * t02 + 0.12 * t12)
    np.testing.assert_allclose(got, [1.2, line, 6 * 0.06 * t01 * t02 * t12], rtol=1e-12)


def test_metrics_equal_jetnets(ref):
    real, gen = ref["efps_real"], ref["efps_gen"]
    fpd = efp.jetnet_fpd(real, gen, min_samples=100, max_samples=250, num_batches=20,
                         num_points=10, seed=3)
    assert fpd.value == pytest.approx(ref["fpd_small"][0], rel=1e-7)
    assert fpd.error == pytest.approx(ref["fpd_small"][1], rel=1e-4)
    kpd = efp.jetnet_kpd(real, gen, num_batches=10, batch_size=200, seed=5)
    np.testing.assert_allclose([kpd.value, kpd.error], ref["kpd_small"], rtol=1e-10)
    assert fpd.value > 10 * fpd.error and kpd.value > 3 * kpd.error  # different samples
    w1 = efp.w1efp(ref["w1efps_real"], ref["w1efps_gen"], seed=7)  # jetnet's defaults
    np.testing.assert_allclose(w1.means, ref["w1efp_default_means"], rtol=1e-12)
    np.testing.assert_allclose(w1.stds, ref["w1efp_default_stds"], rtol=1e-10)
    small = efp.w1efp(efp.jetnet_efps(ref["real"]), efp.jetnet_efps(ref["gen"]),
                      num_eval_samples=200, num_batches=5, seed=np.random.default_rng(8))
    np.testing.assert_allclose(small.means, ref["w1efp_small_means"], rtol=1e-10)
    np.testing.assert_allclose(small.stds, ref["w1efp_small_stds"], rtol=1e-8)
    assert small.per_batch.shape == (5, 5)
    average = small.average()
    assert average.value == pytest.approx(small.means.mean(), rel=1e-12)
    assert average.error == pytest.approx(small.per_batch.mean(axis=1).std(), rel=1e-12)


def test_same_sample_gives_small_distances(ref):
    real = ref["efps_real"]
    half = efp.jetnet_kpd(real[:125], real[125:], batch_size=100, seed=0)
    other = efp.jetnet_kpd(real, ref["efps_gen"], batch_size=100, seed=0)
    assert abs(half.value) < 3 * half.error + 1e-3 and other.value > 10 * abs(half.value)
    w1 = efp.w1efp(real, real, num_eval_samples=100, num_batches=2)
    other_w1 = efp.w1efp(real, ref["efps_gen"], num_eval_samples=100, num_batches=2)
    assert (w1.means < other_w1.means).all()


def test_batch_efps_flag_jets_without_pt_and_bad_inputs_raise():
    batch = _batch(np.array([10.0, 5.0, 0.0, 0.0, 3.0]), np.array([0.0, 0.1, 0.2, 0.3, 0.0]),
                   np.array([0.0, 0.1, 0.2, 0.3, 0.1]), [2, 2, 1])
    values = efp.batch_efps(batch)
    assert np.isnan(values[1]).all() and np.isfinite(values[[0, 2]]).all()
    ones = np.ones((2, 3))
    with pytest.raises(ValueError, match="one shape"):
        efp.efps(ones, ones, np.ones((2, 4)))
    one_nan = ones.copy()
    one_nan[1, 2] = np.nan
    with pytest.raises(ValueError, match="pt_rel: 1 unmasked"):
        efp.efps(ones, ones, one_nan)
    masked = efp.efps(ones, ones, one_nan, np.array([[1, 1, 1], [1, 1, 0]], dtype=bool))
    assert np.isfinite(masked).all()
    with pytest.raises(ValueError, match="mask has shape"):
        efp.efps(ones, ones, ones, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="self-loop"):
        efp.efps(ones, ones, ones, graphs=[((0, 0),)])
    with pytest.raises(ValueError, match="beta"):
        efp.efps(ones, ones, ones, beta=0.0)
    with pytest.raises(ValueError, match="eta_rel, phi_rel, pt_rel"):
        efp.jetnet_efps(np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        efp.w1efp(np.full((3, 2), np.nan), ones.T)
    with pytest.raises(ValueError, match="batch_size"):
        efp.jetnet_kpd(ones.T, ones.T, batch_size=1)
