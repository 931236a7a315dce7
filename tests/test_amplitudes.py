"""Squared amplitudes (jetfm.physics.amplitudes): the closed-form e+e- -> q qbar g against an
explicit Dirac-trace evaluation of its Feynman diagrams and, orientation-averaged, against the
textbook (x1^2 + x2^2) / ((1 - x1)(1 - x2)) cross section; the Born and soft-gluon limits;
Lorentz invariance and permutation symmetries; the surrogate's properties; cuts and data."""

import itertools
import math

import numpy as np
import pytest

from jetfm.physics.amplitudes import (
    C_F,
    E2,
    GS2,
    N_C,
    PROCESSES,
    Q_QUARK,
    cut_mask,
    ee_qq_ng_surrogate,
    ee_qqg,
    generate,
    get_process,
    invariants,
    random_lorentz,
    transform,
)
from jetfm.physics.rambo import beams, minkowski_dot, rambo

SQRT_S = 500.0
METRIC = np.diag([1.0, -1.0, -1.0, -1.0])


def events(n_final: int, n: int, seed: int = 1) -> np.ndarray:
    final, _ = rambo(n, n_final, SQRT_S, rng=seed)
    return np.concatenate((beams(n, SQRT_S), final), axis=1)


# ------------------------------------------------------------------ independent evaluation
def _gamma_matrices() -> np.ndarray:
    """gamma^mu, Dirac representation (4, 4, 4)."""
    i2, z = np.eye(2), np.zeros((2, 2))
    sigma = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]),
             np.array([[1, 0], [0, -1]])]
    g0 = np.block([[i2, z], [z, -i2]]).astype(complex)
    return np.array([g0] + [np.block([[z, s], [-s, z]]).astype(complex) for s in sigma])


GAMMA = _gamma_matrices()


def slash(p: np.ndarray) -> np.ndarray:
    return np.einsum("m,mab->ab", METRIC @ p, GAMMA)


def traced_ee_qqg(p1, p2, p3, p4, p5) -> float:
    """(1/4) sum |M|^2 of e+(p1) e-(p2) -> q(p3) qbar(p4) g(p5) from the two diagrams:
    L^{mu nu} = Tr[p2 g^mu p1 g^nu], hadron current Gamma^{a mu} = g^a (p3+p5) g^mu / s35 -
    g^mu (p4+p5) g^a / s45, gluon polarisation sum -g_ab, photon propagator 1/s; couplings
    e^4 Q^2 g^2 and colour Tr(T^a T^a) = N_c C_F."""
    s = 2 * minkowski_dot(p1, p2)
    s35, s45 = 2 * minkowski_dot(p3, p5), 2 * minkowski_dot(p4, p5)
    lepton = np.array([[np.trace(slash(p2) @ GAMMA[m] @ slash(p1) @ GAMMA[n])
                        for n in range(4)] for m in range(4)])

    def current(a, m):
        return (GAMMA[a] @ slash(p3 + p5) @ GAMMA[m] / s35
                - GAMMA[m] @ slash(p4 + p5) @ GAMMA[a] / s45)

    def current_bar(a, n):  # reversed order (Dirac conjugate)
        return (GAMMA[n] @ slash(p3 + p5) @ GAMMA[a] / s35
                - GAMMA[a] @ slash(p4 + p5) @ GAMMA[n] / s45)

    hadron = np.array([[sum(-METRIC[a, a] * np.trace(slash(p3) @ current(a, m) @ slash(p4)
                                                      @ current_bar(a, n)) for a in range(4))
                        for n in range(4)] for m in range(4)])
    contracted = np.real(np.sum((METRIC @ lepton @ METRIC) * hadron))
    return 0.25 * E2 ** 2 * Q_QUARK ** 2 * GS2 * N_C * C_F * contracted / s ** 2


def test_closed_form_matches_dirac_traces():
    p = events(3, 4, seed=5)
    closed = ee_qqg(p)
    for k in range(len(p)):
        assert closed[k] == pytest.approx(traced_ee_qqg(*p[k]), rel=1e-10)


def test_orientation_average_is_the_textbook_cross_section():
    """Averaged over the beam direction, A = (8/3) N_c C_F e^4 Q^2 g^2 (x1^2 + x2^2) / ((1 -
    x1)(1 - x2)) / s (Ellis-Stirling-Webber's d sigma / dx1 dx2 with the phase space and flux;
    module docstring). The numerator is quadratic in the beam direction, so the 6 directions
    +-x, +-y, +-z (a spherical 3-design) average it exactly."""
    final = events(3, 5, seed=6)[:, 2:]
    s = SQRT_S ** 2
    x = 2 * final[..., 0] / SQRT_S
    expected = (8 / 3 * N_C * C_F * E2 ** 2 * Q_QUARK ** 2 * GS2
                * (x[:, 0] ** 2 + x[:, 1] ** 2) / ((1 - x[:, 0]) * (1 - x[:, 1])) / s)
    total = np.zeros(len(final))
    for axis, sign in itertools.product(range(3), (1, -1)):
        n = np.zeros(3)
        n[axis] = sign
        incoming = SQRT_S / 2 * np.array([[1, *n], [1, *-n]])
        p = np.concatenate((np.broadcast_to(incoming, (len(final), 2, 4)), final), axis=1)
        total += ee_qqg(p) / 6
    np.testing.assert_allclose(total, expected, rtol=1e-12)


def test_born_and_soft_gluon_limits():
    """The surrogate at n = 0 is the Born e+e- -> q qbar, (1/4) sum |M|^2 = e^4 Q^2 N_c (1 +
    cos^2 theta) (e+e- -> mu+mu-, Peskin-Schroeder Sec. 5.1, times the colours); the exact
    e+e- -> q qbar g with a gluon of momentum lambda k -> Born x g^2 C_F 2 (p3.p4) / ((p3.k)
    (p4.k)) / lambda^2 (the eikonal factor)."""
    p = events(2, 6, seed=7)
    cos_theta = p[:, 2, 3] / p[:, 2, 0]
    born = ee_qq_ng_surrogate(p, 0)
    np.testing.assert_allclose(born, E2 ** 2 * Q_QUARK ** 2 * N_C * (1 + cos_theta ** 2),
                               rtol=1e-12)
    direction = np.array([0.3, -0.5, 0.6])
    k = np.array([1.0, *direction / np.linalg.norm(direction)])  # massless
    lam = 1e-4
    soft = np.concatenate((p, np.broadcast_to(lam * k, (len(p), 1, 4))), axis=1)
    d = minkowski_dot
    eikonal = GS2 * C_F * 2 * d(p[:, 2], p[:, 3]) / (d(p[:, 2], k) * d(p[:, 3], k))
    np.testing.assert_allclose(ee_qqg(soft) * lam ** 2, born * eikonal, rtol=1e-9)


def test_surrogate_one_gluon_is_leading_colour_exact_and_factorises():
    p = events(3, 6, seed=8)
    np.testing.assert_allclose(ee_qq_ng_surrogate(p, 1), ee_qqg(p) * (N_C / 2) / C_F,
                               rtol=1e-12)
    # soft second gluon: A_2 -> A_1 x leading-colour eikonal factors of its neighbours
    k = np.array([2.0, 1.0, 1.0, np.sqrt(2.0)])
    soft = np.concatenate((p, np.broadcast_to(1e-3 * k, (len(p), 1, 4))), axis=1)
    s = invariants(np.concatenate((p, np.broadcast_to(k, (len(p), 1, 4))), axis=1))
    q, qbar, g, j = 2, 3, 4, 5

    def eik(a, b):
        return s[:, a, b] / (s[:, a, j] * s[:, j, b])

    factor = 2 * GS2 * N_C * (eik(q, g) + eik(g, qbar))
    np.testing.assert_allclose(ee_qq_ng_surrogate(soft, 2) * 1e-6,
                               ee_qq_ng_surrogate(p, 1) * factor, rtol=1e-10)


@pytest.mark.parametrize("name", ["ee_qqg", "ee_qq2g", "ee_qq3g"])
def test_lorentz_invariance(name):
    proc = get_process(name)
    p = events(proc.n_particles - 2, 50, seed=9)
    moved = transform(p, random_lorentz(len(p), 1.5, rng=3))
    assert not np.allclose(moved, p)
    # the transformation is a Lorentz one: every invariant kept
    np.testing.assert_allclose(invariants(moved), invariants(p), atol=1e-8 * SQRT_S ** 2)
    np.testing.assert_allclose(proc.squared_amplitude(moved), proc.squared_amplitude(p),
                               rtol=1e-9)


@pytest.mark.parametrize("name", ["ee_qqg", "ee_qq2g", "ee_qq3g"])
def test_permutation_symmetries(name):
    """Symmetric under e+ <-> e-, q <-> qbar and any permutation of the gluons; not under
    exchanging a quark with a gluon (the test can fail)."""
    proc = get_process(name)
    p = events(proc.n_particles - 2, 40, seed=10)
    a = proc.squared_amplitude(p)
    swaps = [[1, 0, 2, 3], [0, 1, 3, 2]]
    n = proc.n_particles
    for order in swaps:
        np.testing.assert_allclose(proc.squared_amplitude(p[:, order + list(range(4, n))]), a,
                                   rtol=1e-12)
    for perm in itertools.permutations(range(4, n)):
        np.testing.assert_allclose(proc.squared_amplitude(p[:, [0, 1, 2, 3, *perm]]), a,
                                   rtol=1e-12)
    crossed = [0, 1, 4, 3, 2, *range(5, n)]
    assert not np.allclose(proc.squared_amplitude(p[:, crossed]), a, rtol=1e-3)
    assert proc.types == (0, 0, 1, 1) + (2,) * (n - 4)


def test_cuts_and_generate():
    p, amplitude, report = generate("ee_qq2g", 500, SQRT_S, y_cut=0.02, seed=4)
    assert p.shape == (500, 6, 4) and amplitude.shape == (500,)
    assert cut_mask(p, 0.02).all() and (amplitude > 0).all() and np.isfinite(amplitude).all()
    s = invariants(p)
    final = s[:, 2:, 2:][:, *np.triu_indices(4, k=1)]
    assert (final > 0.02 * SQRT_S ** 2).all()
    assert report["accepted"] + report["removed_by_cut"] == report["generated"]
    assert 0.3 < report["efficiency"] < 0.9 and report["accepted"] >= 500
    again = generate("ee_qq2g", 500, SQRT_S, y_cut=0.02, seed=4)
    np.testing.assert_array_equal(again[0], p)
    # the cut removes what it should: a collinear pair
    q = events(3, 1)
    q[0, 4] = q[0, 2] * 1e-3
    assert not cut_mask(q, 0.01)[0]
    assert math.isclose(report["phase_space_volume"],
                        report["efficiency"] * (SQRT_S ** 2) ** 2 / (2 * (4 * math.pi) ** 5
                                                                     * 6 * 2), rel_tol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="process 'ee_mumu'"):
        get_process("ee_mumu")
    with pytest.raises(ValueError, match=r"shape \(events, 5, 4\)"):
        ee_qqg(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        ee_qqg(np.full((2, 5, 4), np.nan))
    with pytest.raises(ValueError, match="y_cut"):
        cut_mask(events(3, 2), 1.5)
    with pytest.raises(ValueError, match="keeps"):
        generate("ee_qq3g", 10, SQRT_S, y_cut=0.3, seed=1, chunk=1000)
    assert set(PROCESSES) >= {"ee_qqg", "ee_qq2g", "ee_qq3g"}


# ------------------------------------------------------------------ input checks
AMPLITUDES = [("ee_qqg", 1, ee_qqg), ("surrogate", 1, lambda p: ee_qq_ng_surrogate(p, 1)),
              ("surrogate", 2, lambda p: ee_qq_ng_surrogate(p, 2))]


@pytest.mark.parametrize(("who", "n_gluons", "amplitude"), AMPLITUDES)
@pytest.mark.parametrize("dtype", [int, bool, complex, str, object])
def test_momenta_must_be_a_real_float_array(who, n_gluons, amplitude, dtype):
    """Integer, bool, complex (cast with only a ComplexWarning before), string and object
    arrays are refused with a TypeError, not cast."""
    p = events(2 + n_gluons, 2, seed=20).astype(dtype)
    with pytest.raises(TypeError, match=rf"{who}.*momenta: expected a real floating-point"):
        amplitude(p)
    with pytest.raises(TypeError, match="momenta: expected a real floating-point"):
        ee_qqg(np.ones((2, 5, 4), int))  # was accepted: -0.10


def _unphysical(kind: str, n_gluons: int) -> np.ndarray:
    p = events(2 + n_gluons, 4, seed=21)
    q3, g = 2, 4
    if kind == "negative energy":
        p[1, 3 + n_gluons, 0] *= -1  # one final-state energy sign flipped
    elif kind == "zero-momentum gluon":
        p[:, g] = 0.0
    elif kind == "massive quark":
        p[2, q3, 0] += 10.0
    elif kind == "unbalanced":
        p[3, g] *= 1.01  # massless, but p1 + p2 != sum of the final state
    elif kind == "collinear gluon":
        # the quark of a q qbar + (n - 1) g event splits into 0.7 q and an exactly collinear
        # gluon 0.3 q (the first gluon): massless and conserved, with s_35 = 0
        base = events(1 + n_gluons, 4, seed=21)
        p = np.concatenate((base[:, :4], 0.3 * base[:, 2:3], base[:, 4:]), axis=1)
        p[:, q3] = 0.7 * base[:, q3]
    return p


@pytest.mark.parametrize(("who", "n_gluons", "amplitude"), AMPLITUDES)
@pytest.mark.parametrize(("kind", "message"), [
    ("negative energy", r"every energy must be > 0; particle \d has E = -"),
    ("zero-momentum gluon", "every energy must be > 0; particle 4 has E = 0"),
    ("massive quark", r"momenta must be massless.*particle 2 of event 2"),
    ("unbalanced", "four-momentum must be conserved.*event 3"),
    ("collinear gluon", r"pole invariant s_35 = \(p3 \+ p5\)\^2 must be > 0"),
])
def test_unphysical_momenta_are_rejected(who, n_gluons, amplitude, kind, message):
    """Before: a negative |M|^2 (flipped energy), inf or -6.7e10 (zero or collinear gluon),
    values for a massive quark or unbalanced momenta; now a ValueError saying what."""
    with pytest.raises(ValueError, match=rf"{who}.*{message}"):
        amplitude(_unphysical(kind, n_gluons))


def test_collinear_gluon_event_is_otherwise_physical():
    """The collinear test point passes every check but the pole: it is massless, conserved
    and has positive energies (so the pole check, not another, catches it)."""
    p = _unphysical("collinear gluon", 1)
    assert p.shape == (4, 5, 4) and (p[..., 0] > 0).all()
    np.testing.assert_allclose(minkowski_dot(p, p), 0.0, atol=1e-9 * SQRT_S ** 2)
    np.testing.assert_allclose(p[:, :2].sum(axis=1), p[:, 2:].sum(axis=1), atol=1e-9)
    assert invariants(p)[:, 2, 4].max() <= 1e-12 * p[:, 2, 0].max() * p[:, 4, 0].max()


@pytest.mark.parametrize("name", ["ee_qqg", "ee_qq2g", "ee_qq3g"])
def test_float32_and_boosted_events_pass_the_checks(name):
    """The tolerances keep float32 RAMBO momenta and events boosted in float32 (rapidity 3)
    valid; the amplitude moves by their rounding only."""
    proc = get_process(name)
    p, a, _ = generate(name, 300, SQRT_S, seed=22)
    np.testing.assert_allclose(proc.squared_amplitude(p.astype(np.float32)), a, rtol=1e-4)
    lorentz = random_lorentz(len(p), 3.0, rng=4)
    boosted = transform(p.astype(np.float32), lorentz.astype(np.float32))
    assert boosted.dtype == np.float32
    np.testing.assert_allclose(proc.squared_amplitude(boosted), a, rtol=1e-2)


def test_cut_mask_shape_and_y_cut_range():
    """One event without the batch axis is a ValueError naming the expected shape (was a raw
    einsum error); y_cut must lie in (0, 2 / (n (n - 1))): beyond, no massless point passes
    since the n (n - 1) / 2 invariants s_ij of the n final-state partons sum to s."""
    p = events(3, 20, seed=23)
    with pytest.raises(ValueError, match=r"shape \(n_events, n_particles, 4\).*got \(5, 4\)"):
        cut_mask(p[0], 0.01)
    with pytest.raises(ValueError, match="y_cut: 0.0 must be > 0"):
        cut_mask(p, 0.0)
    with pytest.raises(ValueError, match=r"y_cut: 0.34 must be < 2 / \(n \(n - 1\)\) = 0.3333 "
                                         r"for n = 3 final-state partons.*keeps no point"):
        cut_mask(p, 0.34)
    assert cut_mask(p, 0.33).shape == (20,)  # allowed, if rarely passed
    with pytest.raises(ValueError, match=r"= 0.1 for n = 5 final-state partons"):
        generate("ee_qq3g", 10, SQRT_S, y_cut=0.1)  # checked before generating
    with pytest.raises(TypeError, match="cut_mask: momenta: expected a real floating-point"):
        cut_mask(p.astype(int), 0.01)
    with pytest.raises(ValueError, match="at least 2 final-state particles"):
        cut_mask(p[:, :3], 0.01)


def test_random_lorentz_parameters():
    for bad in (np.nan, np.inf, -1.0):
        with pytest.raises(ValueError, match="rapidity"):
            random_lorentz(3, bad)
    with pytest.raises(TypeError, match="n: 3.0 is not an integer"):
        random_lorentz(3.0, 1.0)
    lorentz = random_lorentz(3, 0.5, rng=1)
    assert np.isfinite(lorentz).all()
    with pytest.raises(ValueError, match=r"lorentz must have shape \(4, 4\) or"):
        transform(events(3, 2), lorentz)
    with pytest.raises(ValueError, match=r"transform: momenta must have shape"):
        transform(events(3, 2)[0], lorentz[0])


def test_generate_and_process_arguments_are_named():
    with pytest.raises(ValueError, match="seed: -1 must be >= 0"):
        generate("ee_qqg", 10, SQRT_S, seed=-1)
    with pytest.raises(TypeError, match="seed: '1' is not an integer"):
        generate("ee_qqg", 10, SQRT_S, seed="1")
    with pytest.raises(TypeError, match="n_events: 2.5 is not an integer"):
        generate("ee_qqg", 2.5, SQRT_S)
    with pytest.raises(TypeError, match="process: a process name or Process expected"):
        generate(3, 10, SQRT_S)
    with pytest.raises(TypeError, match="process: a process name"):
        get_process(["ee_qqg"])
    with pytest.raises(TypeError, match="n_gluons: '2' is not an integer"):
        ee_qq_ng_surrogate(events(4, 2), "2")
    with pytest.raises(TypeError, match="invariants: momenta: expected a real floating-point"):
        invariants(np.ones((2, 5, 4), int))
