"""N-subjettiness and soft-drop mass against FastJet's per-jet API, a slow independent reference,
physics invariances and limits, and edge cases (0-3 constituents, NaN momenta)."""

from __future__ import annotations

import awkward as ak
import fastjet
import numpy as np
import pytest
from io_jets import random_jets

from jetfm.data import JetBatch, JetDataError
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import MAX_R, cluster, exclusive_jets_up_to
from jetfm.physics.observables import (
    OBSERVABLE_LABELS,
    jet_observables,
    nsubjettiness,
    softdrop_mass,
)

# ----------------------------------------------------------------------------- helpers


def jet_arrays(batch: JetBatch) -> list[np.ndarray]:
    """Per jet an (n, 4) float64 array of px, py, pz, E [GeV]."""
    columns = [ak.to_list(batch.particles[f]) for f in ("px", "py", "pz", "energy")]
    return [
        np.array(list(zip(*parts, strict=True)), dtype=np.float64)
        for parts in zip(*columns, strict=True)
    ]


def batch_of(jets: list[np.ndarray]) -> JetBatch:
    counts = [len(j) for j in jets]
    flat = np.concatenate([j.reshape(-1, 4) for j in jets]) if jets else np.zeros((0, 4))
    return JetBatch.from_p4(*(ak.unflatten(flat[:, i], counts) for i in range(4)))


def prongs(
    pts: list[float], etas: list[float], phis: list[float], n_each: int, width: float, seed: int = 0
) -> np.ndarray:
    """Massless particles in tight clusters ("prongs") of total pT ``pts`` [GeV]."""
    rng = np.random.default_rng(seed)
    parts = []
    for pt, eta, phi in zip(pts, etas, phis, strict=True):
        share = rng.dirichlet(np.ones(n_each)) * pt
        p4 = kin.ptetaphim_to_p4(
            share, eta + rng.normal(0, width, n_each), phi + rng.normal(0, width, n_each)
        )
        parts.append(np.stack(p4, axis=1))
    return np.concatenate(parts)


def rap_phi_pt(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textbook rapidity 0.5 log((E + pz) / (E - pz)), azimuth and pT of (n, 4) momenta."""
    y = 0.5 * np.log((p[:, 3] + p[:, 2]) / (p[:, 3] - p[:, 2]))
    return y, np.arctan2(p[:, 1], p[:, 0]), np.hypot(p[:, 0], p[:, 1])


def ref_delta_r2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared (y, phi) distance between all rows of (n, 4) ``a`` and (m, 4) ``b``: (n, m)."""
    ya, pa, _ = rap_phi_pt(a)
    yb, pb, _ = rap_phi_pt(b)
    dphi = np.abs(pa[:, None] - pb[None, :])
    dphi = np.minimum(dphi, 2 * np.pi - dphi)
    return (ya[:, None] - yb[None, :]) ** 2 + dphi**2


def ref_exclusive_kt(p: np.ndarray, n_axes: int) -> np.ndarray:
    """O(n^3) exclusive kt: d_ij = min(pt_i^2, pt_j^2) dR_ij^2 / R^2, d_iB = pt_i^2, E-scheme
    merging until ``n_axes`` remain. R = FastJet's max_allowable_R, so d_iB never wins."""
    jets = [row for row in p]
    while len(jets) > n_axes:
        arr = np.array(jets)
        _, _, pt = rap_phi_pt(arr)
        dij = np.minimum(pt[:, None] ** 2, pt[None, :] ** 2) * ref_delta_r2(arr, arr) / MAX_R**2
        np.fill_diagonal(dij, np.inf)
        i, j = np.unravel_index(np.argmin(dij), dij.shape)
        assert dij[i, j] < np.min(pt**2), "a beam distance won: R is not large enough"
        merged = jets[i] + jets[j]
        jets = [x for k, x in enumerate(jets) if k not in (i, j)] + [merged]
    return np.array(jets)


def ref_tau(p: np.ndarray, axes: np.ndarray, beta: float = 1.0, r0: float = 0.8) -> float:
    _, _, pt = rap_phi_pt(p)
    dr = np.sqrt(ref_delta_r2(p, axes).min(axis=1))
    return float(np.sum(pt * dr**beta) / np.sum(pt * r0**beta))


def ref_ca_tree(p: np.ndarray) -> tuple:
    """Cambridge/Aachen: merge the closest pair in (y, phi) until one remains.
    A node is (p4, child_a, child_b); a leaf is (p4, None, None)."""
    nodes = [(row, None, None) for row in p]
    while len(nodes) > 1:
        arr = np.array([n[0] for n in nodes])
        d = ref_delta_r2(arr, arr)
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        merged = (nodes[i][0] + nodes[j][0], nodes[i], nodes[j])
        nodes = [x for k, x in enumerate(nodes) if k not in (i, j)] + [merged]
    return nodes[0]


def ref_softdrop_mass(
    p: np.ndarray, beta: float = 0.0, z_cut: float = 0.1, r0: float = 0.8
) -> float:
    node = ref_ca_tree(p)
    while node[1] is not None:
        a, b = node[1][0], node[2][0]
        pt_a, pt_b = np.hypot(a[0], a[1]), np.hypot(b[0], b[1])
        dr = np.sqrt(ref_delta_r2(a[None], b[None])[0, 0])
        if min(pt_a, pt_b) / (pt_a + pt_b) > z_cut * (dr / r0) ** beta:
            break
        node = node[1] if pt_a > pt_b else node[2]
    e, px, py, pz = node[0][3], node[0][0], node[0][1], node[0][2]
    return float(kin.mass(e, px, py, pz))


def fastjet_taus(p: np.ndarray, n_max: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Axes and tau_N (beta = 1, r0 = 0.8) through FastJet's per-jet PseudoJet API."""
    particles = [fastjet.PseudoJet(*map(float, row)) for row in p]
    sequence = fastjet.ClusterSequence(
        particles, fastjet.JetDefinition(fastjet.kt_algorithm, MAX_R)
    )
    all_axes, taus = [], []
    for n in range(1, n_max + 1):
        axes = sequence.exclusive_jets(n)
        num = sum(q.pt() * min(q.delta_R(a) for a in axes) for q in particles)
        taus.append(num / sum(q.pt() * 0.8 for q in particles))
        all_axes.append(np.array([[a.px(), a.py(), a.pz(), a.E()] for a in axes]))
    return all_axes, np.array(taus)


def sorted_rows(x: np.ndarray) -> np.ndarray:
    return x[np.lexsort(x.T[::-1])]


@pytest.fixture(scope="module")
def jets20() -> JetBatch:
    return random_jets(20, seed=3, n_min=5, n_max=30, label=False)


# ----------------------------------------------------------------------------- references


def test_axes_and_taus_match_fastjet_pseudojet_api(jets20):
    tau = nsubjettiness(jets20, n_max=4)
    sequence = cluster(jets20, "kt", MAX_R, "E")
    axes_by_n = {n: exclusive_jets_up_to(sequence, n) for n in range(1, 5)}
    for i, p in enumerate(jet_arrays(jets20)):
        fj_axes, fj_tau = fastjet_taus(p, 4)
        np.testing.assert_allclose(tau[i], fj_tau, rtol=1e-6, atol=1e-12)
        for n in range(1, 5):
            ours = np.array(
                [[a[f] for f in ("px", "py", "pz", "E")] for a in ak.to_list(axes_by_n[n][i])]
            )
            np.testing.assert_allclose(
                sorted_rows(ours), sorted_rows(fj_axes[n - 1]), rtol=1e-9, atol=1e-9
            )


def test_taus_match_slow_reference(jets20):
    for beta, r0 in [(1.0, 0.8), (2.0, 0.6)]:
        tau = nsubjettiness(jets20, n_max=3, beta=beta, r0=r0)
        for i, p in enumerate(jet_arrays(jets20)):
            ref = [ref_tau(p, ref_exclusive_kt(p, n), beta, r0) for n in (1, 2, 3)]
            np.testing.assert_allclose(tau[i], ref, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(("beta", "z_cut"), [(0.0, 0.1), (1.0, 0.2)])
def test_softdrop_matches_slow_reference(jets20, beta, z_cut):
    sd = softdrop_mass(jets20, beta=beta, z_cut=z_cut)
    ref = [ref_softdrop_mass(p, beta, z_cut) for p in jet_arrays(jets20)]
    np.testing.assert_allclose(sd, ref, rtol=1e-6, atol=1e-6)
    # the reference is not trivially the full mass: grooming removed something in some jets
    assert np.any(np.array(ref) < 0.99 * jets20.jet_mass)


# ----------------------------------------------------------------------------- invariances


def transformed(batch: JetBatch, p4_map) -> JetBatch:
    return batch_of([p4_map(p) for p in jet_arrays(batch)])


def test_taus_and_softdrop_invariant_under_permutation_rotation_and_boost(jets20):
    rng = np.random.default_rng(5)
    tau, sd = nsubjettiness(jets20), softdrop_mass(jets20)
    alpha, dy = 2.1, 1.3

    def rotate(p):
        c, s = np.cos(alpha), np.sin(alpha)
        return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2], p[:, 3]], 1)

    def boost(p):
        ch, sh = np.cosh(dy), np.sinh(dy)
        return np.stack(
            [p[:, 0], p[:, 1], ch * p[:, 2] + sh * p[:, 3], ch * p[:, 3] + sh * p[:, 2]], 1
        )

    for p4_map in (lambda p: p[rng.permutation(len(p))], rotate, boost):
        other = transformed(jets20, p4_map)
        np.testing.assert_allclose(nsubjettiness(other), tau, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(softdrop_mass(other), sd, rtol=1e-6, atol=1e-6)
    # the boost changed the jets: pseudorapidity-based distances would not be invariant
    assert not np.allclose(transformed(jets20, boost).jet_eta, jets20.jet_eta)


def test_tau_decreases_with_n_and_softdrop_below_jet_mass():
    batch = random_jets(200, seed=9, n_min=5, n_max=40, label=False)
    tau = nsubjettiness(batch)
    assert np.all(np.diff(tau, axis=1) <= 1e-12)
    assert np.all(tau[:, 0] > 0)
    assert np.all(softdrop_mass(batch) <= batch.jet_mass * (1 + 1e-9))


# ----------------------------------------------------------------------------- physics limits


def test_two_and_three_prong_jets():
    two = prongs([300, 250], [0.0, 0.3], [0.0, 0.5], 8, 0.005, seed=1)
    three = prongs([300, 250, 200], [0.0, 0.3, -0.3], [0.0, 0.4, 0.4], 8, 0.005, seed=2)
    one = prongs([500], [0.2], [1.0], 12, 0.005, seed=3)
    out = jet_observables(batch_of([two, three, one]))
    assert out["tau21"][0] < 0.05 and out["tau1"][0] > 0.2
    assert out["tau32"][1] < 0.05 and out["tau2"][1] > 0.1
    assert out["tau21"][2] > 0.5  # a one-prong jet is not two-prong-like
    assert out["tau1"][2] < 0.02


def test_softdrop_removes_soft_wide_angle_particle_and_keeps_two_prongs():
    core = prongs([400, 200], [0.0, 0.15], [0.0, 0.1], 6, 0.01, seed=4)
    soft = np.stack(kin.ptetaphim_to_p4(np.array([8.0]), np.array([0.5]), np.array([-0.5])), 1)
    jets = batch_of([np.concatenate([core, soft]), core])
    sd = softdrop_mass(jets)
    core_mass = jets.jet_mass[1]
    assert jets.jet_mass[0] > 1.2 * core_mass  # the soft wide-angle particle adds mass ...
    np.testing.assert_allclose(sd[0], core_mass, rtol=1e-9)  # ... which soft drop removes
    np.testing.assert_allclose(sd[1], core_mass, rtol=1e-9)  # symmetric prongs: full mass kept
    # an asymmetric split below z_cut is groomed away, leaving the hard prong's mass
    hard = prongs([300, 200], [0.0, 0.1], [0.0, 0.05], 4, 0.005, seed=6)
    lopsided = batch_of([np.concatenate([hard, prongs([20], [0.4], [0.3], 4, 0.01, seed=7)])])
    assert lopsided.jet_mass[0] > 1.2 * batch_of([hard]).jet_mass[0]
    np.testing.assert_allclose(softdrop_mass(lopsided), batch_of([hard]).jet_mass, rtol=1e-9)


# ----------------------------------------------------------------------------- edge cases


def test_few_and_zero_constituents():
    big = random_jets(1, seed=11, counts=[12], label=False)
    rows = [jet_arrays(random_jets(1, seed=n, counts=[n], label=False))[0] for n in (1, 2, 3)]
    jets = batch_of([rows[0], rows[1], np.zeros((0, 4)), rows[2], jet_arrays(big)[0]])
    out = jet_observables(jets)
    tau = np.stack([out[f"tau{n}"] for n in range(1, 5)], axis=1)
    np.testing.assert_array_equal(tau[0], [0, 0, 0, 0])
    assert tau[1, 0] > 0 and np.all(tau[1, 1:] == 0)
    assert np.all(tau[3, :2] > 0) and np.all(tau[3, 2:] == 0)
    assert np.all(np.isnan(tau[2]))
    np.testing.assert_array_equal(np.isnan(out["tau21"]), [True, False, True, False, False])
    np.testing.assert_array_equal(np.isnan(out["tau32"]), [True, True, True, False, False])
    assert out["tau21"][1] == 0.0
    for key in ("pt", "eta", "phi", "mass", "sdmass"):
        assert np.isnan(out[key][2]) and np.all(np.isfinite(np.delete(out[key], 2))), key
    assert out["n_particles"].tolist() == [1, 2, 0, 3, 12]
    p = rows[0][0]
    np.testing.assert_allclose(out["sdmass"][0], kin.mass(p[3], p[0], p[1], p[2]), atol=1e-6)
    # values in a mixed batch equal those computed jet by jet
    alone = jet_observables(big)
    for key in OBSERVABLE_LABELS:
        np.testing.assert_allclose(out[key][4], alone[key][0], rtol=1e-12, err_msg=key)
    assert np.all(np.isnan(nsubjettiness(batch_of([np.zeros((0, 4))]))))


def test_observable_table_and_labels(jets20):
    out = jet_observables(jets20)
    assert set(out) == set(OBSERVABLE_LABELS)
    assert all(v.shape == (len(jets20),) for v in out.values())
    np.testing.assert_allclose(out["mass"], jets20.jet_mass)
    np.testing.assert_allclose(out["tau32"], out["tau3"] / out["tau2"])
    for key in ("pt", "mass", "sdmass"):
        assert "[GeV]" in OBSERVABLE_LABELS[key]


def test_bad_input_raises():
    batch = random_jets(4, seed=1, n_min=3, n_max=5, label=False)
    px = ak.to_numpy(ak.flatten(batch.particles.px)).copy()
    px[-1] = np.nan
    bad = JetBatch.from_p4(
        ak.unflatten(px, batch.n_particles),
        batch.particles.py,
        batch.particles.pz,
        batch.particles.energy,
    )
    with pytest.raises(JetDataError, match="non-finite px.*jet 3"):
        nsubjettiness(bad)
    with pytest.raises(JetDataError, match="non-finite px"):
        softdrop_mass(bad)
    with pytest.raises(ValueError, match="n_max"):
        nsubjettiness(batch, n_max=0)
    with pytest.raises(ValueError, match="z_cut"):
        softdrop_mass(batch, z_cut=1.5)


# ----------------------------------------------------------------------------- zero-pT particles
# Massless particles (pT [GeV], eta, phi) of issue 11 and their tau_1..tau_4 (beta = 1, r0 = 0.8).
GIVEN_PT, GIVEN_ETA, GIVEN_PHI = [310.0, 140.0, 55.0, 12.0], [0.2, 0.42, 0.05, 0.31], [
    1.10, 1.32, 0.90, 1.25]
GIVEN_TAUS = [0.17602, 0.06340, 0.00697, 0.0]
BEAM_PARTICLES = {  # (px, py, pz, E) [GeV] with pT = 0: carry zero weight
    "zero-pT": [0.0, 0.0, 0.5, 0.5],
    "null": [0.0, 0.0, 0.0, 0.0],
    "backward": [0.0, 0.0, -3.0, 3.0],
}


def given_jet() -> np.ndarray:
    return np.stack(kin.ptetaphim_to_p4(*map(np.array, (GIVEN_PT, GIVEN_ETA, GIVEN_PHI))), 1)


def written_and_read(jets: list[np.ndarray], tmp_path) -> JetBatch:
    """The jets through a JetClass ROOT file (uproot TTree) and the reader."""
    from jetfm.data import read_jets, write_jets

    batch = batch_of(jets)
    batch.label = np.zeros(len(jets), dtype=np.int64)
    write_jets(batch, tmp_path / "beam.root")
    return read_jets(tmp_path / "beam.root")


def test_zero_pt_and_null_particles_carry_zero_weight(tmp_path):
    """Issue 11, item 2: the given jet's taus with and without zero-pT and null particles, in any
    position, equal the given values and FastJet's; sdmass equals FastJet's soft drop of the jet
    without them. (FastJet's own exclusive_jets(1) is no reference with them: the beam-axis
    particle is a separate C/A inclusive jet, and which of the two is "the" exclusive jet is a
    tie in d_iB = 1; jetfm keeps the hardest inclusive jet.)"""
    base = given_jet()
    beam = np.array(list(BEAM_PARTICLES.values()))
    jets = [base, np.vstack([base, beam[:1]]), np.vstack([beam[1:2], base]),
            np.vstack([base[:2], beam, base[2:]])]
    batch = written_and_read(jets, tmp_path)
    assert batch.n_particles.tolist() == [4, 5, 5, 7]
    out = jet_observables(batch)
    tau = np.stack([out[f"tau{n}"] for n in range(1, 5)], axis=1)
    np.testing.assert_allclose(tau, np.tile(GIVEN_TAUS, (4, 1)), atol=5e-6)
    np.testing.assert_allclose(tau[1:], np.tile(tau[0], (3, 1)), rtol=1e-6, atol=1e-12)
    for i, p in enumerate(jet_arrays(batch)):
        np.testing.assert_allclose(tau[i], fastjet_taus(p, 4)[1], rtol=1e-6, atol=1e-12)
    theirs = cluster(batch_of([base]), "cambridge").exclusive_jets_softdrop_grooming(
        njets=1, beta=0.0, symmetry_cut=0.1, symmetry_measure="scalar_z", R0=0.8,
        recursion_choice="larger_pt",
    )
    np.testing.assert_allclose(out["sdmass"], ak.to_numpy(theirs.msoftdrop)[0], rtol=1e-6)
    for key, values in out.items():
        assert np.all(np.isfinite(values)), key


def test_every_observable_finite_for_jets_of_beam_particles():
    """Jets with one real particle, only beam particles, a massive or tachyonic pT = 0 particle
    (FastJet: finite resp. infinite rapidity): every observable and Lund coordinate is finite."""
    from jetfm.physics.lund import lund_splittings
    from jetfm.physics.trees import build_trees, validate_trees

    real = given_jet()[:1]
    beam = np.array(list(BEAM_PARTICLES.values()))
    jets = [np.vstack([real, beam]), beam[:1], beam[1:2], beam,
            np.vstack([given_jet(), [[0.0, 0.0, 0.5, 0.6]]]),
            np.vstack([given_jet(), [[0.0, 0.0, 0.5, 0.4]]])]
    batch = batch_of(jets)
    out = jet_observables(batch)
    for key, values in out.items():
        if key in ("tau21", "tau32"):  # documented NaN where the denominator is 0
            continue
        assert np.all(np.isfinite(values)), (key, values)
    np.testing.assert_array_equal(out["tau1"][:4], 0.0)  # at most one particle with pT > 0
    np.testing.assert_allclose(out["sdmass"][0], 0.0, atol=1e-6)  # the massless real particle
    assert out["eta"][1] == kin.MAX_RAP + 0.5 and out["phi"][1] == 0.0
    for feature in ("eta", "phi", "eta_rel", "phi_rel", "delta_r", "mass", "pt"):
        values = ak.to_numpy(ak.flatten(getattr(batch, feature)))
        assert np.all(np.isfinite(values)), feature
    for algorithm in ("kt", "cambridge", "antikt"):
        for recombination in ("E", "WTA_pt"):
            trees = build_trees(batch, algorithm, recombination)
            failed = [str(c) for c in validate_trees(trees, batch) if c.passed is False]
            assert not failed, (algorithm, recombination, failed)
            for name in ("pt", "rapidity", "phi", "mass"):
                assert np.all(np.isfinite(getattr(trees, name))), (algorithm, name)
            flat = ak.flatten(lund_splittings(trees))
            for name in flat.fields:
                assert np.all(np.isfinite(ak.to_numpy(flat[name]))), (algorithm, name)
