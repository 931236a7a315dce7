"""Tree-level squared matrix elements jetfm computes itself, and their phase-space points: the
data of the amplitude-regression study (:mod:`jetfm.studies.amplitudes`; Spinner's thesis,
chapter 6.2, regresses q qbar -> Z + n g from MadGraph, which jetfm does not ship).

Processes (:data:`PROCESSES`), all e+(p1) e-(p2) -> q(p3) qbar(p4) + n gluons (p5, ...) through
a virtual photon, in the centre-of-mass frame (beams along z, :func:`jetfm.physics.rambo.beams`),
the final state flat in phase space (:func:`jetfm.physics.rambo.rambo`):

* ``ee_qqg`` (n = 1), **exact** closed form, averaged over the initial spins and summed over
  final spins and colours (:func:`ee_qqg`):

      A = 2 N_c C_F e^4 Q_q^2 g_s^2 [(p1.p3)^2 + (p1.p4)^2 + (p2.p3)^2 + (p2.p4)^2]
          / [(p1.p2) (p3.p5) (p4.p5)].

  Source: the two Feynman diagrams (gluon off the quark or the antiquark), squared with the
  Dirac traces of the lepton and hadron tensors; ``tests/test_amplitudes.py`` repeats that
  trace evaluation numerically with explicit gamma matrices (agreement to 1e-12) and checks
  the orientation average against the textbook three-parton cross section (Ellis, Stirling,
  Webber, *QCD and collider physics*, CUP 1996, Sec. 3.3; the equation number was not checked
  here): d sigma / dx1 dx2 = sigma_0 C_F alpha_s / (2 pi) (x1^2 + x2^2) / ((1 - x1)(1 - x2)),
  sigma_0 = 4 pi alpha^2 N_c Q_q^2 / (3 s), x_i = 2 E_i / sqrt(s) of the quark and antiquark;
  with dPhi_3 = s / (128 pi^3) dx1 dx2 after the angles and the flux 1 / (2 s), that is
  <A> = (8/3) N_c C_F e^4 Q_q^2 g_s^2 (x1^2 + x2^2) / ((1 - x1)(1 - x2)) / s.

* ``ee_qq2g``, ``ee_qq3g``, ... (n >= 2), a **surrogate** (:func:`ee_qq_ng_surrogate`):
  the leading-colour antenna form

      A_n = 2 e^4 Q_q^2 N_c (2 g_s^2 N_c)^n [(p1.p3)^2 + (p1.p4)^2 + (p2.p3)^2 + (p2.p4)^2]
            / (p1.p2) * sum over orderings sigma of the gluons of
            1 / (s_{3 sigma1} s_{sigma1 sigma2} ... s_{sigma_n 4}),   s_ij = (p_i + p_j)^2.

  Why this: the true e+e- -> q qbar + n g amplitudes (n >= 2) are long (Ellis-Ross-Terrano
  for n = 2) or need a recursion, while the regression only needs a function with the real
  amplitude's structure. This one has it: it is Lorentz invariant; symmetric under
  permutations of the gluons, under q <-> qbar and under e+ <-> e-; it has the poles of the
  colour-ordered (Parke-Taylor) amplitudes in every adjacent invariant of every colour
  ordering q g... g qbar (their squared denominators |<3 s1><s1 s2>...<sn 4>|^2 = s_{3 s1}
  ... s_{sn 4}); it factorises exactly in every soft-gluon limit, A_n -> A_{n-1} x the
  leading-colour eikonal factor 2 g_s^2 N_c s_ab / (s_aj s_jb) of the gluon's neighbours a, b
  (each ordering gives the eikonal factor of its neighbours); for n = 0 it is the exact Born
  e+e- -> q qbar, and for n = 1 the exact ``ee_qqg`` with C_F -> N_c / 2 (both tested). It
  misses the subleading-colour terms and the helicity-dependent numerators of n >= 2 (no
  interference between orderings). It costs n! terms: n <= :data:`MAX_GLUONS`.

Couplings (fixed; they only scale A): alpha = 1/128 (e^2 = 4 pi alpha), alpha_s = 0.118
(g_s^2 = 4 pi alpha_s), an up-type quark Q_q = 2/3, N_c = 3, C_F = 4/3. Units: momenta in
GeV, A in GeV^(-2n) (A of 2 -> 2 + n is of mass dimension -2n).

Cuts (:func:`cut_mask`): every pair of final-state partons has s_ij > y_cut s (a JADE-like
resolution cut, default y_cut = 0.01), keeping away from the soft and collinear poles (the
thesis cuts pT > 20 GeV, Delta R > 0.4 at the LHC instead). The cut keeps the phase space
flat in the accepted region; :func:`generate` counts what it removes.

Input checks (every amplitude function, :func:`_check_momenta`): the momenta must be a real
floating-point array (``TypeError`` otherwise: integer, bool, complex, strings) of shape
(events, particles, 4), finite, with every energy > 0, every momentum massless within
|p_i^2| <= :data:`MASS_TOLERANCE` E_i max_j E_j (the rounding of float32 momenta, also after
a float32 boost of rapidity 3, stays below 5e-7 of that scale, while a quark of mass 10 GeV
in a 500 GeV event is off by ~0.1), four-momentum conserved, |sum_in - sum_out| <=
:data:`BALANCE_TOLERANCE` sum_i E_i per component (both formulas use s = (p1 + p2)^2 as the
photon virtuality; the closed form is derived for p1 + p2 = p3 + p4 + p5), and every
invariant in a denominator (s_12 and the pole invariants) resolved from zero,
s_ij > :data:`POLE_FLOOR` E_i E_j (float64 rounding; an exactly collinear pair or a zero
momentum gives 0, inf or a value of either sign at that level). Violations raise
``ValueError`` naming the function, the check and the first events.

Particle types (:attr:`Process.types`), the one-hot token of each particle for the
regressors, as the reference code's ``TYPE_TOKEN_DICT`` with ``include_permsym``
(heidelberg-hepml/lorentz-gatr, ``experiments/amplitudes/experiment.py``: ``zgg: [0, 0, 1,
2, 2]``, q and qbar one type): e+ e- type 0, q qbar type 1, gluons type 2 (the amplitude is
symmetric under the exchange within each type).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from jetfm.checks import NON_NEGATIVE, POSITIVE, Rule, check_count, float_array, number
from jetfm.physics.rambo import beams, minkowski_dot, rambo

ALPHA = 1.0 / 128.0
ALPHA_S = 0.118
Q_QUARK = 2.0 / 3.0
N_C = 3
C_F = (N_C * N_C - 1) / (2 * N_C)
E2 = 4 * math.pi * ALPHA
GS2 = 4 * math.pi * ALPHA_S
MAX_GLUONS = 6
Y_CUT = 0.01
N_TYPES = 3
"""Particle types: 0 lepton (e+, e-), 1 quark (q, qbar), 2 gluon."""
MASS_TOLERANCE = 1e-5
"""Massless within |p_i^2| <= MASS_TOLERANCE E_i max_j E_j (module docstring: input checks)."""
BALANCE_TOLERANCE = 1e-5
"""Four-momentum conserved within BALANCE_TOLERANCE sum_i E_i per component (the soft-gluon
limit tests append a gluon of 2e-3 GeV to a 500 GeV event: 2e-6)."""
POLE_FLOOR = 1e-12
"""A pole invariant s_ij <= POLE_FLOOR E_i E_j is zero within float64 rounding."""


def _events(bad: np.ndarray) -> list[int]:
    """The first 10 events flagged by ``bad`` (events, ...) for an error message."""
    return np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))[:10].tolist()


def _check_array(p4: np.ndarray, who: str) -> np.ndarray:
    """Momenta as a float64 (events, particles, 4) finite array; ``TypeError`` for a
    non-float array, ``ValueError`` for another shape or non-finite entries."""
    p4 = float_array(f"{who}: momenta", p4)
    if p4.ndim != 3 or p4.shape[2] != 4:
        raise ValueError(f"{who}: momenta must have shape (n_events, n_particles, 4) "
                         f"(E, px, py, pz), got {p4.shape}")
    p4 = p4.astype(np.float64, copy=False)
    if not np.isfinite(p4).all():
        raise ValueError(f"{who}: non-finite momenta in events {_events(~np.isfinite(p4))}")
    return p4


def _check_momenta(p4: np.ndarray, n: int, who: str, poles: list[tuple[int, int]]
                   ) -> np.ndarray:
    """The checks of the module docstring ("Input checks") on momenta (events, ``n``, 4),
    e+ e- first; ``poles``: the pairs (i, j) whose invariant is in a denominator. Returns
    them as float64 (the same array when already float64)."""
    p4 = float_array(f"{who}: momenta", p4)
    if p4.ndim != 3 or p4.shape[1:] != (n, 4):
        raise ValueError(f"{who}: momenta must have shape (events, {n}, 4) (E, px, py, pz), "
                         f"got {p4.shape}")
    p4 = _check_array(p4, who)
    energy = p4[..., 0]
    if not (energy > 0).all():
        i = int(np.flatnonzero(~(energy > 0).all(axis=0))[0])
        raise ValueError(f"{who}: every energy must be > 0; particle {i} has E = "
                         f"{energy[~(energy[:, i] > 0), i][0]:g} GeV (events "
                         f"{_events(~(energy > 0))})")
    scale = energy * energy.max(axis=1, keepdims=True)
    mass2 = energy * energy - np.sum(p4[..., 1:] * p4[..., 1:], axis=-1)
    massive = np.abs(mass2) > MASS_TOLERANCE * scale
    if massive.any():
        e, i = np.argwhere(massive)[0]
        raise ValueError(f"{who}: momenta must be massless, |p^2| <= {MASS_TOLERANCE:g} E "
                         f"max(E); particle {i} of event {e} has p^2 = {mass2[e, i]:.6g} GeV^2 "
                         f"at E = {energy[e, i]:.6g} GeV (events {_events(massive)})")
    imbalance = np.abs(p4[:, :2].sum(axis=1) - p4[:, 2:].sum(axis=1))
    unbalanced = imbalance > BALANCE_TOLERANCE * energy.sum(axis=1, keepdims=True)
    if unbalanced.any():
        e = int(np.flatnonzero(unbalanced.any(axis=1))[0])
        raise ValueError(f"{who}: four-momentum must be conserved (p1 + p2 = sum of the final "
                         f"state within {BALANCE_TOLERANCE:g} of the summed energies); event "
                         f"{e} is off by {np.round(imbalance[e], 6).tolist()} GeV (events "
                         f"{_events(unbalanced)})")
    for i, j in poles:
        s_ij = 2.0 * minkowski_dot(p4[:, i], p4[:, j])
        zero = s_ij <= POLE_FLOOR * energy[:, i] * energy[:, j]
        if zero.any():
            e = int(np.flatnonzero(zero)[0])
            raise ValueError(f"{who}: the pole invariant s_{i + 1}{j + 1} = (p{i + 1} + "
                             f"p{j + 1})^2 must be > 0 (collinear or soft particles); event "
                             f"{e} has s_{i + 1}{j + 1} = {s_ij[e]:.3g} GeV^2 (events "
                             f"{_events(zero)})")
    return p4


def invariants(p4: np.ndarray) -> np.ndarray:
    """s_ij = (p_i + p_j)^2 = 2 p_i . p_j of massless momenta: (events, n, n) [GeV^2] from
    (events, n, 4). ``TypeError`` for a non-float array, ``ValueError`` for another shape or
    non-finite momenta."""
    p4 = _check_array(p4, "invariants")
    g = p4.copy()
    g[..., 1:] *= -1.0
    return 2.0 * np.einsum("eik,ejk->eij", p4, g)


def _lepton_factor(p4: np.ndarray) -> np.ndarray:
    """[(p1.p3)^2 + (p1.p4)^2 + (p2.p3)^2 + (p2.p4)^2] / (p1.p2) [GeV^2]."""
    p1, p2, p3, p4_ = (p4[:, i] for i in range(4))
    d = minkowski_dot
    return (d(p1, p3) ** 2 + d(p1, p4_) ** 2 + d(p2, p3) ** 2 + d(p2, p4_) ** 2) / d(p1, p2)


def ee_qqg(p4: np.ndarray) -> np.ndarray:
    """Exact spin- and colour-summed, initial-spin-averaged |M|^2 of e+(p1) e-(p2) -> gamma*
    -> q(p3) qbar(p4) g(p5) (module docstring: formula and source), (events,) [GeV^-2], from
    massless momenta (events, 5, 4) (E, px, py, pz) [GeV] in the order e+, e-, q, qbar, g.

    Raises ``TypeError`` for momenta that are not a real floating-point array; ``ValueError``
    for a wrong shape, non-finite momenta, an energy <= 0, a massive momentum, unbalanced
    four-momentum or a pole invariant s_12, s_35, s_45 that is not > 0 (module docstring:
    input checks)."""
    p4 = _check_momenta(p4, 5, "ee_qqg", [(0, 1), (2, 4), (3, 4)])
    d = minkowski_dot
    return (2 * N_C * C_F * E2 ** 2 * Q_QUARK ** 2 * GS2 * _lepton_factor(p4)
            / (d(p4[:, 2], p4[:, 4]) * d(p4[:, 3], p4[:, 4])))


def ee_qq_ng_surrogate(p4: np.ndarray, n_gluons: int) -> np.ndarray:
    """The leading-colour antenna surrogate A_n of e+ e- -> q qbar + ``n_gluons`` g (module
    docstring: formula, why, what it misses), (events,) [GeV^(-2n)], from massless momenta
    (events, 4 + n, 4) [GeV] in the order e+, e-, q, qbar, g1, ..., gn. n = 0 is the exact
    Born |M|^2 of e+ e- -> q qbar.

    Raises ``TypeError`` for an ``n_gluons`` that is not an integer or momenta that are not a
    real floating-point array; ``ValueError`` for n outside [0, MAX_GLUONS], a wrong shape,
    non-finite momenta, an energy <= 0, a massive momentum, unbalanced four-momentum or a
    pole invariant that is not > 0: s_12 and, with gluons, every s_ij of q or qbar with a
    gluon and of two gluons (without: s_34) (module docstring: input checks)."""
    n = check_count("n_gluons", n_gluons, 0, MAX_GLUONS)
    gluons = range(4, 4 + n)
    poles = ([(0, 1), *((a, g) for a in (2, 3) for g in gluons),
              *itertools.combinations(gluons, 2)] if n else [(0, 1), (2, 3)])
    p4 = _check_momenta(p4, 4 + n, f"ee_qq{n}g surrogate", poles)
    s = invariants(p4)
    chains = np.zeros(len(p4))
    for order in itertools.permutations(range(4, 4 + n)):
        path = (2, *order, 3)
        chain = np.ones(len(p4))
        for a, b in itertools.pairwise(path):
            chain = chain * s[:, a, b]
        chains += 1.0 / chain
    return (2 * E2 ** 2 * Q_QUARK ** 2 * N_C * (2 * GS2 * N_C) ** n
            * _lepton_factor(p4) * chains)


@dataclass(frozen=True)
class Process:
    """One process of the study: its name, number of gluons, whether the amplitude is exact or
    the surrogate, and the particle types (module docstring)."""

    name: str
    n_gluons: int
    exact: bool

    @property
    def n_particles(self) -> int:
        """External particles: 2 leptons, q, qbar and the gluons."""
        return 4 + self.n_gluons

    @property
    def types(self) -> tuple[int, ...]:
        """Type of each particle (0 lepton, 1 quark, 2 gluon), in the momentum order."""
        return (0, 0, 1, 1) + (2,) * self.n_gluons

    @property
    def title(self) -> str:
        """Plot label."""
        gluons = "g" * self.n_gluons if self.n_gluons <= 3 else f"{self.n_gluons}g"
        return (r"$e^+e^-\to q\bar q " + gluons + "$"
                + ("" if self.exact else " (surrogate)"))

    def squared_amplitude(self, p4: np.ndarray) -> np.ndarray:
        """A (events,) of momenta (events, n_particles, 4) [GeV]: :func:`ee_qqg` when exact,
        else :func:`ee_qq_ng_surrogate`."""
        if self.exact:
            return ee_qqg(p4)
        return ee_qq_ng_surrogate(p4, self.n_gluons)


PROCESSES: dict[str, Process] = {"ee_qqg": Process("ee_qqg", 1, True)}
PROCESSES.update({f"ee_qq{n}g": Process(f"ee_qq{n}g", n, False)
                  for n in range(2, MAX_GLUONS + 1)})


def get_process(name: str) -> Process:
    """The process called ``name``; ``ValueError`` listing the valid names (``TypeError``
    for a name that is not a string)."""
    if not isinstance(name, str):
        raise TypeError(f"process: a process name (str) expected, got {name!r}")
    if name not in PROCESSES:
        raise ValueError(f"process {name!r}: use one of {list(PROCESSES)}")
    return PROCESSES[name]


def check_y_cut(y_cut: float, n_final: int) -> float:
    """``y_cut`` as a float in (0, 2 / (n (n - 1))) for ``n_final`` = n massless final-state
    partons: their n (n - 1) / 2 invariants s_ij sum to s, so none passes s_ij > y_cut s
    beyond; ``ValueError`` naming y_cut and the bound otherwise."""
    y_cut = number("y_cut", y_cut, Rule(float, low=0, low_open=True))
    bound = 2 / (n_final * (n_final - 1))
    if y_cut >= bound:
        raise ValueError(f"y_cut: {y_cut!r} must be < 2 / (n (n - 1)) = {bound:.4g} for n = "
                         f"{n_final} final-state partons: their pair invariants s_ij sum to s, "
                         "so the cut s_ij > y_cut s keeps no point")
    return y_cut


def cut_mask(p4: np.ndarray, y_cut: float, n_initial: int = 2) -> np.ndarray:
    """(events,) bool: every pair i < j of final-state particles (index >= ``n_initial``) has
    s_ij > ``y_cut`` s, s = (p1 + p2)^2.

    Raises ``TypeError`` for momenta that are not a real floating-point array or an
    ``n_initial`` that is not an integer; ``ValueError`` for momenta not of shape (n_events,
    n_particles, 4) with at least 2 final-state particles, non-finite momenta, s <= 0, or
    y_cut outside (0, 2 / (n (n - 1))) for the n final-state particles
    (:func:`check_y_cut`)."""
    p4 = _check_array(p4, "cut_mask")
    n_initial = check_count("n_initial", n_initial, 2)
    n_final = p4.shape[1] - n_initial
    if n_final < 2:
        raise ValueError(f"cut_mask: momenta (n_events, n_particles, 4) with at least 2 "
                         f"final-state particles after the n_initial = {n_initial} incoming "
                         f"ones expected, got shape {p4.shape}")
    y_cut = check_y_cut(y_cut, n_final)
    s = invariants(p4)
    s_total = s[:, 0, 1]
    if not (s_total > 0).all():
        raise ValueError(f"cut_mask: s = (p1 + p2)^2 must be > 0; not in events "
                         f"{_events(~(s_total > 0))}")
    final = s[:, n_initial:, n_initial:]
    n = final.shape[1]
    upper = np.triu_indices(n, k=1)
    return np.all(final[:, upper[0], upper[1]] > y_cut * s_total[:, None], axis=1)


def generate(process: str | Process, n_events: int, sqrt_s: float, y_cut: float = Y_CUT,
             seed: int = 1, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray,
                                                           dict[str, Any]]:
    """``n_events`` phase-space points of ``process`` passing the cut (:func:`cut_mask`) and
    their squared amplitudes.

    Returns (momenta (n_events, n_particles, 4) float64 [GeV]: beams then the RAMBO final
    state, A (n_events,) float64, a report: ``generated`` points, ``accepted``, ``efficiency``
    and ``phase_space_volume`` of the accepted region [GeV^(2n-4)], the RAMBO weight times the
    efficiency). Points are drawn in chunks of ``chunk`` (at most 2 n_events, at least 1000)
    until enough pass, seeded by ``seed``.

    Raises ``TypeError`` for a process that is neither a name nor a :class:`Process`, or for
    n_events, chunk or seed that are not integers; ``ValueError`` for n_events < 1, chunk <
    1, seed < 0, sqrt_s <= 0, y_cut outside (0, 2 / (n (n - 1))) for the n final-state
    partons (:func:`check_y_cut`), or a cut that keeps (almost) nothing: fewer than 1e-4 of
    the points after 10 chunks (ee_qq6g at y_cut = 0.01 keeps ~2e-5, so it stops after 1M
    points rather than running for hours)."""
    if not isinstance(process, str | Process):
        raise TypeError(f"process: a process name or Process expected, got {process!r}")
    proc = get_process(process) if isinstance(process, str) else process
    n_events = check_count("n_events", n_events, 1)
    sqrt_s = number("sqrt_s", sqrt_s, POSITIVE)
    check_y_cut(y_cut, proc.n_particles - 2)
    chunk = min(check_count("chunk", chunk, 1), max(1000, 2 * n_events))
    rng = np.random.default_rng(check_count("seed", seed, 0))
    kept, generated, accepted, weight = [], 0, 0, 0.0
    while accepted < n_events:
        final, weight = rambo(chunk, proc.n_particles - 2, sqrt_s, rng)
        p4 = np.concatenate((beams(chunk, sqrt_s), final), axis=1)
        mask = cut_mask(p4, y_cut)
        generated += chunk
        accepted += int(mask.sum())
        kept.append(p4[mask])
        if generated >= 10 * chunk and accepted < 1e-4 * generated:
            raise ValueError(f"{proc.name}: y_cut = {y_cut} keeps {accepted} of {generated} "
                             "points; lower y_cut")
    p4 = np.concatenate(kept)[:n_events]
    amplitude = proc.squared_amplitude(p4)
    efficiency = accepted / generated
    report = {"process": proc.name, "generated": generated, "accepted": accepted,
              "removed_by_cut": generated - accepted, "efficiency": efficiency,
              "phase_space_volume": weight * efficiency}
    return p4, amplitude, report


def random_lorentz(n: int, rapidity: float, rng: np.random.Generator | int | None = None
                   ) -> np.ndarray:
    """(n, 4, 4) proper orthochronous Lorentz transformations acting on (E, px, py, pz): a
    rotation uniform in SO(3) (random unit quaternion) followed by a boost of ``rapidity`` in
    a random direction.

    Raises ``TypeError`` for an n that is not an integer; ``ValueError`` for n < 0 or a
    rapidity that is negative or not finite."""
    n = check_count("n", n, 0)
    rapidity = number("rapidity", rapidity, NON_NEGATIVE)
    rng = np.random.default_rng(rng)
    q = rng.normal(size=(n, 4))
    a, b, c, d = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    rot = np.stack([
        np.stack([a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)], -1),
        np.stack([2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)], -1),
        np.stack([2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d], -1),
    ], 1)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    gamma, gb = np.cosh(rapidity), np.sinh(rapidity)
    boost = np.tile(np.eye(4), (n, 1, 1))
    boost[:, 0, 0] = gamma
    boost[:, 0, 1:] = boost[:, 1:, 0] = -gb * direction
    boost[:, 1:, 1:] += (gamma - 1) * direction[:, :, None] * direction[:, None, :]
    full = np.tile(np.eye(4), (n, 1, 1))
    full[:, 1:, 1:] = rot
    return boost @ full


def transform(p4: np.ndarray, lorentz: np.ndarray) -> np.ndarray:
    """Momenta (events, particles, 4) transformed by one (4, 4) or per-event (events, 4, 4)
    Lorentz matrix. ``TypeError`` for arrays that are not real floating point; ``ValueError``
    for other shapes or non-finite entries."""
    p4 = float_array("transform: momenta", p4)
    lorentz = float_array("transform: lorentz", lorentz)
    if p4.ndim != 3 or p4.shape[2] != 4:
        raise ValueError(f"transform: momenta must have shape (n_events, n_particles, 4), got "
                         f"{p4.shape}")
    if lorentz.shape not in ((4, 4), (len(p4), 4, 4)):
        raise ValueError(f"transform: lorentz must have shape (4, 4) or (n_events, 4, 4) = "
                         f"({len(p4)}, 4, 4), got {lorentz.shape}")
    if not (np.isfinite(p4).all() and np.isfinite(lorentz).all()):
        raise ValueError("transform: non-finite momenta or Lorentz matrices")
    if lorentz.ndim == 2:
        return p4 @ lorentz.T
    return np.einsum("eij,epj->epi", lorentz, p4)


__all__ = ["N_TYPES", "PROCESSES", "Process", "cut_mask", "ee_qq_ng_surrogate", "ee_qqg",
           "generate", "get_process", "invariants", "random_lorentz", "transform"]
