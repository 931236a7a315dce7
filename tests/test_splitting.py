"""Two-body splitting parametrisation (exact round trips, conservation, boost covariance),
trees -> jets, and the binned per-splitting NLL with oracle and uniform models."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from io_jets import random_jets

from jetfm.data import JetBatch
from jetfm.data.pythia import GeneratorConfig, generate
from jetfm.metrics.splitting import (
    DEFAULT_BINS,
    binned_splitting_nll,
    lund_bins,
    lund_plane_distance,
)
from jetfm.models.splitting import trees_to_jets
from jetfm.physics import splitting as sp
from jetfm.physics.lund import primary_lund
from jetfm.physics.trees import JetTrees, build_trees

COUNTS = np.array([1, 2, 3, 0, 7, 25, 40, 12])


@pytest.fixture(scope="module")
def jets() -> JetBatch:
    return random_jets(len(COUNTS), seed=11, counts=COUNTS)


def test_trees_to_jets_gives_back_the_constituents(jets):
    trees = build_trees(jets)
    back = trees_to_jets(trees, label=8)
    assert np.array_equal(back.n_particles, COUNTS)
    for f in ("px", "py", "pz", "energy"):
        assert ak.array_equal(back.particles[f], ak.values_astype(jets.particles[f], np.float64))
    assert np.all(back.label == 8)
    np.testing.assert_array_equal(back.entry, np.arange(len(COUNTS)))
    per_jet = trees_to_jets(trees, label=jets.label)
    np.testing.assert_array_equal(per_jet.label, jets.label)
    assert np.all(trees_to_jets(trees).label == -1)


# ----------------------------------------------------------------------------- kinematics
@pytest.fixture(scope="module")
def pythia_trees() -> JetTrees:
    """kt trees of real generator-level top jets (stored as float32, like every file)."""
    batch, _ = generate(GeneratorConfig("top"), 25, seed=2, progress=False)
    return build_trees(batch)


def children_of(trees: JetTrees) -> tuple[np.ndarray, np.ndarray]:
    a, b = trees.children(np.flatnonzero(~trees.is_leaf))
    return trees.p4[a], trees.p4[b]


def raw_m2(p4: np.ndarray) -> np.ndarray:
    return p4[:, 3] ** 2 - np.sum(p4[:, :3] ** 2, axis=1)


def assert_round_trip(c1: np.ndarray, c2: np.ndarray, tol: float = 1e-9) -> sp.SplittingParameters:
    params = sp.parameters(c1, c2)
    parent = c1 + c2
    back1, back2 = sp.split(parent, params.m1, params.m2, params.cos_theta, params.phi,
                            mass=params.mass)
    scale = parent[:, 3:]
    np.testing.assert_array_less(np.abs(back1 - c1) / scale, tol)
    np.testing.assert_array_less(np.abs(back2 - c2) / scale, tol)
    # conservation by construction: child 2 = parent - child 1 (one rounding)
    np.testing.assert_array_less(np.abs(back1 + back2 - parent) / scale, 1e-15)
    return params


def test_round_trip_on_physical_float64_jets(jets):
    c1, c2 = children_of(build_trees(jets))
    params = assert_round_trip(c1, c2)
    assert params.n_negative_m2 == 0 and params.n_clipped == 0
    np.testing.assert_allclose(params.m1, np.sqrt(raw_m2(c1)), rtol=1e-6, atol=1e-9)
    assert np.all(params.m1 + params.m2 <= params.mass)


def test_round_trip_on_pythia_kt_trees(pythia_trees):
    c1, c2 = children_of(pythia_trees)
    physical = (raw_m2(c1) >= 0) & (raw_m2(c2) >= 0)
    assert physical.sum() > 500 and (~physical).sum() > 10  # photons stored in float32
    assert_round_trip(c1[physical], c2[physical])
    # massless children with float32 rounding m^2 < 0 are counted and come back massless
    params = sp.parameters(c1[~physical], c2[~physical])
    assert params.n_negative_m2 == int((raw_m2(c1) < 0).sum() + (raw_m2(c2) < 0).sum())
    back1, _ = sp.split(c1[~physical] + c2[~physical], params.m1, params.m2,
                        params.cos_theta, params.phi, mass=params.mass)
    np.testing.assert_array_less(sp.mass_of(back1), 1e-3 + params.m1)


def test_rest_frame_kinematics_against_a_slow_reference():
    """cos theta*, phi* from an explicit Lorentz boost matrix and explicit axes."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        parent = np.append(rng.normal(0, 300, 3), 0.0)
        big_m, m1, m2 = 50.0, rng.uniform(0, 20), rng.uniform(0, 20)
        parent[3] = np.sqrt(big_m**2 + np.sum(parent[:3] ** 2))
        cos, phi = rng.uniform(-1, 1), rng.uniform(-np.pi, np.pi)
        c1, c2 = sp.split(parent[None], np.array([m1]), np.array([m2]), np.array([cos]),
                          np.array([phi]))
        beta = parent[:3] / parent[3]
        gamma = parent[3] / big_m
        boost = np.eye(4)
        boost[3, 3] = gamma
        boost[3, :3] = boost[:3, 3] = -gamma * beta
        boost[:3, :3] += (gamma - 1) * np.outer(beta, beta) / (beta @ beta)
        rest1, rest2 = boost @ c1[0], boost @ c2[0]
        np.testing.assert_allclose(rest1[:3], -rest2[:3], atol=1e-9)
        np.testing.assert_allclose([rest1[3], rest2[3]], [
            (big_m**2 + m1**2 - m2**2) / (2 * big_m), (big_m**2 + m2**2 - m1**2) / (2 * big_m)
        ], rtol=1e-9)
        n = parent[:3] / np.linalg.norm(parent[:3])
        e_eta = np.array([0, 0, 1.0]) - n[2] * n
        e_eta /= np.linalg.norm(e_eta)
        e_phi = np.cross(e_eta, n)
        p = rest1[:3]
        np.testing.assert_allclose(p @ n / np.linalg.norm(p), cos, atol=1e-9)
        np.testing.assert_allclose(np.arctan2(p @ e_phi, p @ e_eta), phi, atol=1e-9)


def boost_along(p4: np.ndarray, n: np.ndarray, rapidity: np.ndarray) -> np.ndarray:
    """Boost (n, 4) momenta along unit vectors n (n, 3) by ``rapidity``."""
    par = np.sum(p4[:, :3] * n, axis=1)
    ch, sh = np.cosh(rapidity), np.sinh(rapidity)
    new_par = ch * par + sh * p4[:, 3]
    energy = sh * par + ch * p4[:, 3]
    return np.concatenate([p4[:, :3] + (new_par - par)[:, None] * n, energy[:, None]], axis=1)


def rotate_z(p4: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = p4.copy()
    out[:, 0], out[:, 1] = c * p4[:, 0] - s * p4[:, 1], s * p4[:, 0] + c * p4[:, 1]
    return out


def test_parameters_invariant_under_boosts_along_the_parent_and_beam_rotations(jets):
    c1, c2 = children_of(build_trees(jets))
    before = sp.parameters(c1, c2)
    parent = c1 + c2
    n = parent[:, :3] / np.linalg.norm(parent[:, :3], axis=1, keepdims=True)
    y = np.random.default_rng(2).uniform(-1.5, 1.5, len(n))
    for b1, b2 in (
        (boost_along(c1, n, y), boost_along(c2, n, y)),
        (rotate_z(c1, 0.7), rotate_z(c2, 0.7)),
    ):
        after = sp.parameters(b1, b2)
        np.testing.assert_allclose(after.mass, before.mass, rtol=1e-8)
        # child masses come from E^2 - p^2: compare m^2 to the rounding scale eps E^2
        scale = np.maximum(parent[:, 3], b1[:, 3] + b2[:, 3]) ** 2
        for name in ("m1", "m2"):
            diff = np.abs(getattr(after, name) ** 2 - getattr(before, name) ** 2)
            np.testing.assert_array_less(diff, 1e-12 * scale)
        np.testing.assert_allclose(after.cos_theta, before.cos_theta, atol=1e-8)
        np.testing.assert_allclose(np.cos(after.phi - before.phi), 1.0, atol=1e-12)


def test_unconstrained_coordinates_give_physical_children_and_invert():
    rng = np.random.default_rng(9)
    u = rng.normal(0, 6, (2000, 4))
    u[:, 3] = rng.uniform(-np.pi, np.pi, 2000)
    mass = rng.uniform(0.1, 200, 2000)
    params = sp.from_unconstrained(u, mass)
    assert np.all(params.m1 >= 0) and np.all(params.m2 >= 0)
    assert np.all(params.m1 + params.m2 <= mass * (1 + 1e-12))
    back, n_clipped = sp.to_unconstrained(params)
    # both directions clip the unit-interval values into [EPS, 1 - EPS]
    edge = np.log((1 - sp.EPS) / sp.EPS)
    assert np.sum(np.abs(u[:, :3]) > edge) > 10
    np.testing.assert_allclose(back[:, :3], np.clip(u[:, :3], -edge, edge), atol=1e-6)
    np.testing.assert_allclose(back[:, 3], u[:, 3], atol=1e-12)
    assert n_clipped <= np.sum(np.abs(u[:, :3]) > edge)  # only values at the edge, by rounding
    _, n_clipped = sp.to_unconstrained(sp.SplittingParameters(
        mass, 0 * mass, 0 * mass, np.ones_like(mass), u[:, 3]))
    assert n_clipped == 3 * len(mass)  # r1 = r2 = 0 and cos theta* = 1
    parent = np.stack([rng.normal(0, 500, 2000), rng.normal(0, 500, 2000),
                       rng.normal(0, 500, 2000), np.zeros(2000)], axis=1)
    parent[:, 3] = np.sqrt(mass**2 + np.sum(parent[:, :3] ** 2, axis=1))
    c1, c2 = sp.split(parent, params.m1, params.m2, params.cos_theta, params.phi, mass=mass)
    # masses from E^2 - p^2 lose precision ~ eps E^2 / m: compare m^2 relative to E^2
    for child, m in ((c1, params.m1), (c2, params.m2)):
        np.testing.assert_array_less(np.abs(raw_m2(child) - m**2) / parent[:, 3] ** 2, 1e-12)


def test_extreme_coordinates_leave_energy_to_both_children():
    """r1 -> 1 or cos theta* -> +-1 at the clip: both children keep energy and a direction."""
    u = np.array([[60.0, 0.0, 0.0, 0.1], [-60.0, 60.0, -60.0, 2.0], [0.0, -60.0, 60.0, -1.0]])
    mass = np.array([80.0, 80.0, 80.0])
    parent = np.array([[300.0, 100.0, 50.0, 0.0]] * 3)
    parent[:, 3] = np.sqrt(mass**2 + np.sum(parent[:, :3] ** 2, axis=1))
    params = sp.from_unconstrained(u, mass)
    c1, c2 = sp.split(parent, params.m1, params.m2, params.cos_theta, params.phi, mass=mass)
    for child in (c1, c2):
        assert np.all(child[:, 3] > 0) and np.all(np.hypot(child[:, 0], child[:, 1]) > 0)


def test_log_jacobian_against_finite_differences():
    rng = np.random.default_rng(4)
    u = rng.normal(0, 2, (50, 4))
    mass = np.ones(50)
    h = 1e-6
    jac = np.zeros((50, 4, 4))
    for i in range(4):
        du = np.zeros(4)
        du[i] = h
        hi, lo = sp.from_unconstrained(u + du, mass), sp.from_unconstrained(u - du, mass)
        # physical coordinates r1, r2, cos, phi
        x_hi = np.stack([hi.m1, hi.m2 / (1 - hi.m1), hi.cos_theta, hi.phi], 1)
        x_lo = np.stack([lo.m1, lo.m2 / (1 - lo.m1), lo.cos_theta, lo.phi], 1)
        jac[:, :, i] = (x_hi - x_lo) / (2 * h)
    np.testing.assert_allclose(sp.log_jacobian(u), np.log(np.abs(np.linalg.det(jac))),
                               atol=1e-5)


def test_unphysical_masses_and_beam_parents_raise():
    parent = np.array([[10.0, 0, 100, 120]])
    with pytest.raises(ValueError, match="unphysical"):
        sp.split(parent, np.array([60.0]), np.array([60.0]), np.array([0.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="beam"):
        sp.split(np.array([[0.0, 0, 100, 120]]), np.array([1.0]), np.array([1.0]),
                 np.array([0.0]), np.array([0.0]))


# ----------------------------------------------------------------------------- binned NLL
class OracleModel:
    """Samples the true children every time."""

    def sample_children(self, trees, nodes, n_samples, seed=1):
        a, b = trees.children(nodes)
        return (np.repeat(trees.p4[a][:, None], n_samples, 1),
                np.repeat(trees.p4[b][:, None], n_samples, 1))


class UniformBinModel:
    """Samples children spread evenly over the Lund bins (softer first, to test ordering)."""

    def sample_children(self, trees, nodes, n_samples, seed=1):
        rng = np.random.default_rng(seed)
        shape = (len(nodes), n_samples)
        value = {}
        for name, edges in DEFAULT_BINS.items():
            lo = np.concatenate([[edges[0] - 1.0], edges])
            hi = np.concatenate([edges, [edges[-1] + 1.0]])
            if name == "psi":
                lo[0], hi[-1] = -np.pi, np.pi
            if name == "ln_z":
                hi[-1] = np.log(0.49)
            k = rng.integers(0, len(lo), shape)
            value[name] = rng.uniform(lo[k], hi[k])
        delta, z, psi = np.exp(-value["ln_inv_delta"]), np.exp(value["ln_z"]), value["psi"]
        pt = trees.pt[nodes][:, None]
        y0, phi0 = trees.rapidity[nodes][:, None], trees.phi[nodes][:, None]

        def massless(pt_, y, phi):
            return np.stack([pt_ * np.cos(phi), pt_ * np.sin(phi), pt_ * np.sinh(y),
                             pt_ * np.cosh(y)], axis=-1)

        harder = massless((1 - z) * pt, np.broadcast_to(y0, shape), np.broadcast_to(phi0, shape))
        softer = massless(z * pt, y0 + delta * np.sin(psi), phi0 + delta * np.cos(psi))
        return softer, harder


def test_binned_nll_of_an_oracle_and_a_uniform_model(pythia_trees):
    nodes = np.flatnonzero(~pythia_trees.is_leaf)[::10]
    oracle = binned_splitting_nll(OracleModel(), pythia_trees, nodes, n_samples=50, alpha=0.5)
    n_bins = int(np.prod([len(e) + 1 for e in DEFAULT_BINS.values()]))
    assert oracle["n_bins"] == n_bins == 144
    np.testing.assert_allclose(oracle["per_splitting"], oracle["oracle_nll"], rtol=1e-12)
    assert oracle["oracle_nll"] == pytest.approx(-np.log(50.5 / (50 + 0.5 * n_bins)))
    sharp = binned_splitting_nll(OracleModel(), pythia_trees, nodes, n_samples=5000,
                                 alpha=0.01)
    assert sharp["nll"] < 1e-3
    uniform = binned_splitting_nll(UniformBinModel(), pythia_trees, nodes, n_samples=3000)
    assert uniform["nll"] == pytest.approx(np.log(n_bins), abs=0.05)
    assert uniform["nll"] == pytest.approx(uniform["uniform_nll"], abs=0.05)


def test_lund_bins_of_known_splittings():
    """Hand-made children land in the bins their (ln 1/Delta, ln z, psi) say."""
    def massless(pt, y, phi):
        return np.array([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(y), pt * np.cosh(y)])

    hard = massless(300.0, 0.2, 1.0)
    # Delta = 0.1 (ln 1/Delta = 2.30: bin 4 of 6), z = 0.1 (ln z = -2.30: bin 2), psi = 0.3
    soft = massless(300.0 / 9, 0.2 + 0.1 * np.sin(0.3), 1.0 + 0.1 * np.cos(0.3))
    expected = (4 * 6 + 2) * 4 + 2
    assert lund_bins(hard[None], soft[None])[0] == expected
    assert lund_bins(soft[None], hard[None])[0] == expected  # pT order decides, not position
    with pytest.raises(ValueError, match="unknown Lund"):
        lund_bins(hard[None], soft[None], {"kt": np.array([1.0])})


def test_lund_plane_distance_is_at_its_floor_for_truth_and_sees_a_changed_plane():
    """Two parts of one sample sit at the floor; shrinking every angle by 4 moves the
    splittings by ln 4 in ln(1/Delta) and ln kt (about two merged bins) and is seen far above
    it."""
    trees = build_trees(generate(GeneratorConfig("top"), 400, seed=11, progress=False)[0])
    lund = primary_lund(trees)
    half = lund_plane_distance(lund[:300], lund[300:], seed=1)
    assert half["splittings_per_jet_truth"] > 3
    assert half["distance"] < 2 * half["floor"] + 0.05
    narrow = ak.with_field(lund, lund["delta"] / 4, "delta")
    narrow = ak.with_field(narrow, lund["kt"] / 4, "kt")
    moved = lund_plane_distance(lund[:300], narrow[300:], seed=1)
    assert moved["distance"] > 4 * moved["floor"]
    # fewer splittings per jet are seen as well as moved ones
    fewer = lund_plane_distance(lund[:300], lund[300:, :2], seed=1)
    assert fewer["splittings_per_jet_generated"] < half["splittings_per_jet_generated"]
    assert fewer["distance"] > 3 * fewer["floor"]
    assert np.isnan(lund_plane_distance(lund[:150], lund[150:300])["floor"])
