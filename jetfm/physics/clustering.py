"""FastJet helpers: clustering the constituents of every jet of a :class:`JetBatch` at once.

fastjet's awkward interface treats each outer entry of a jagged array as an event, so one
``fastjet.ClusterSequence`` reclusters all jets of a batch (one C++ cluster sequence per jet).
Inputs are the constituents' four-momenta ``px, py, pz, E`` [GeV] as awkward ``Momentum4D``
records (float64). Used by :mod:`jetfm.physics.observables` (N-subjettiness axes, soft drop).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import awkward as ak
import fastjet
import numpy as np

from jetfm.data.batch import MOMENTUM_FIELDS, JetBatch, JetDataError
from jetfm.physics import kinematics as kin

ALGORITHMS: dict[str, int] = {
    "kt": fastjet.kt_algorithm,
    "cambridge": fastjet.cambridge_algorithm,
    "antikt": fastjet.antikt_algorithm,
}
RECOMBINATION_SCHEMES: dict[str, int] = {
    "E": fastjet.E_scheme,
    "WTA_pt": fastjet.WTA_pt_scheme,
}
# Large enough that every constituent of a jet merges into one (fjcontrib's ExclusiveJetAxes).
MAX_R: float = fastjet.JetDefinition.max_allowable_R
# Exponent p of the generalised-kt distance min(pT_a^2p, pT_b^2p) Delta R_ab^2 of each algorithm.
PT_EXPONENT: dict[str, int] = {"kt": 1, "cambridge": 0, "antikt": -1}


def pair_distance(a: np.ndarray, b: np.ndarray, algorithm: str = "kt") -> np.ndarray:
    """FastJet's pairwise distance d_ab * R^2 = min(pT_a^2p, pT_b^2p) Delta R_ab^2 of momenta
    ``a``, ``b`` (..., 4) px, py, pz, E [GeV] (Delta R in rapidity and azimuth; GeV^2p). The
    algorithm merges the pair of smallest distance first, so along every branch of a kt or C/A
    tree a splitting's distance is (almost always) below its parent's."""
    if algorithm not in PT_EXPONENT:
        raise ValueError(f"unknown jet algorithm {algorithm!r}; choose from {list(PT_EXPONENT)}")
    pt_a, pt_b = kin.pt(a[..., 0], a[..., 1]), kin.pt(b[..., 0], b[..., 1])
    dy = kin.rapidity(a[..., 3], a[..., 2], a[..., 0], a[..., 1]) - kin.rapidity(
        b[..., 3], b[..., 2], b[..., 0], b[..., 1]
    )
    dphi = kin.delta_phi(kin.phi(a[..., 0], a[..., 1]), kin.phi(b[..., 0], b[..., 1]))
    power = 2 * PT_EXPONENT[algorithm]
    return np.minimum(pt_a**power, pt_b**power) * (dy**2 + dphi**2)


def jet_definition(
    algorithm: str = "kt", r: float = MAX_R, recombination: str = "E"
) -> fastjet.JetDefinition:
    """``fastjet.JetDefinition`` from names: ``"kt"``, ``"cambridge"``, ``"antikt"``;
    recombination ``"E"`` (four-momentum sum) or ``"WTA_pt"``; radius ``r`` in (y, phi)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown jet algorithm {algorithm!r}; choose from {list(ALGORITHMS)}")
    if recombination not in RECOMBINATION_SCHEMES:
        raise ValueError(
            f"unknown recombination scheme {recombination!r}; "
            f"choose from {list(RECOMBINATION_SCHEMES)}"
        )
    if not 0 < r <= MAX_R:
        raise ValueError(f"jet radius must lie in (0, {MAX_R}], got {r}")
    return fastjet.JetDefinition(ALGORITHMS[algorithm], r, RECOMBINATION_SCHEMES[recombination])


@dataclass(frozen=True)
class EventJets:
    """Jets of many events clustered at once (:func:`antikt_event_jets`), in FastJet's order
    (per event, pT-descending). Particle arrays are flat over all events."""

    jet_event: np.ndarray  # (n_jets,) event index of each jet
    constituents: ak.Array  # jets x flat particle index of its constituents
    px: np.ndarray  # (n_jets,) E-scheme sum of the constituents [GeV]
    py: np.ndarray
    pz: np.ndarray

    @property
    def pt(self) -> np.ndarray:
        return kin.pt(self.px, self.py)

    @property
    def eta(self) -> np.ndarray:
        return kin.eta(self.px, self.py, self.pz)

    @property
    def phi(self) -> np.ndarray:
        return kin.phi(self.px, self.py)


def antikt_event_jets(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray,
                   n_per_event: np.ndarray, r: float, pt_floor: float) -> EventJets:
    """Anti-kt jets of radius ``r`` with pT above ``pt_floor`` [GeV] of every event, from
    flat particle arrays [GeV] (event by event, ``n_per_event`` particles each; events with
    none give no jet). One FastJet ``ClusterSequence`` over the jagged events; the jet momenta
    are the sums of their constituents (E scheme). Used by the Pythia8 source and the HepMC
    reader, so both cluster identically."""
    n_per_event = np.asarray(n_per_event, dtype=np.int64)
    inputs = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": energy}), n_per_event)
    index = fastjet.ClusterSequence(inputs, jet_definition("antikt", r)).constituent_index(
        pt_floor)
    jets_per_event = ak.to_numpy(ak.num(index, axis=1))
    jet_event = np.repeat(np.arange(len(n_per_event)), jets_per_event)
    first = np.cumsum(n_per_event) - n_per_event
    constituents = ak.flatten(index, axis=1) + first[jet_event]  # jets x flat particle index
    flat_index = ak.to_numpy(ak.flatten(constituents))
    jet_of_particle = np.repeat(np.arange(len(jet_event)), ak.to_numpy(ak.num(constituents)))

    def jet_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(jet_of_particle, values[flat_index], minlength=len(jet_event))

    return EventJets(jet_event, constituents, jet_sum(px), jet_sum(py), jet_sum(pz))


def constituents_p4(batch: JetBatch, origin: str = "<memory>") -> ak.Array:
    """Constituents as jagged ``Momentum4D`` records (px, py, pz, E) [GeV], float64.

    Raises :class:`JetDataError` naming ``origin`` and the first jet if any momentum is
    not finite: FastJet would cluster NaNs into meaningless numbers.
    """
    counts = batch.n_particles
    flat = {}
    for name in MOMENTUM_FIELDS:
        values = ak.to_numpy(ak.flatten(batch.particles[name])).astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            jet = int(np.searchsorted(np.cumsum(counts), np.flatnonzero(bad)[0], side="right"))
            raise JetDataError(
                f"{origin}: non-finite {name} in {int(bad.sum())} particle(s) "
                f"(first in jet {jet}, {batch.source_of(jet)}); cannot cluster"
            )
        flat["E" if name == "energy" else name] = values
    return ak.unflatten(ak.zip(flat, with_name="Momentum4D"), counts)


def cluster(
    batch: JetBatch,
    algorithm: str = "kt",
    r: float = MAX_R,
    recombination: str = "E",
    origin: str = "<memory>",
) -> fastjet.ClusterSequence:
    """Recluster the constituents of every jet (one cluster sequence per jet).

    Jets without constituents stay empty entries. The result is fastjet's awkward
    ``ClusterSequence``: e.g. ``exclusive_jets_up_to(n)`` gives (n_jets, <= n) subjets.
    """
    return fastjet.ClusterSequence(
        constituents_p4(batch, origin), jet_definition(algorithm, r, recombination)
    )


def exclusive_jets_up_to(sequence: fastjet.ClusterSequence, n_jets: int) -> ak.Array:
    """``min(n_jets, n_particles)`` exclusive subjets per jet, (n_jets, var) ``Momentum4D``.

    fastjet 3.5's ``exclusive_jets`` throws for jets with fewer than ``n_jets`` constituents;
    this variant returns every constituent as its own subjet there. fastjet's python package
    warns on every exclusive-jet call (it compares a JetDefinition with an algorithm enum);
    that spurious warning is silenced here for kt and Cambridge/Aachen only.
    """
    algorithm = sequence.jet_def().jet_algorithm()
    with warnings.catch_warnings():
        if algorithm in (fastjet.kt_algorithm, fastjet.cambridge_algorithm):
            warnings.filterwarnings("ignore", message="dcut and exclusive jets")
        return sequence.exclusive_jets_up_to(n_jets)


def subjet_order(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mask: np.ndarray,
                 n_subjets: int) -> np.ndarray:
    """Per jet, the permutation that groups its particles by exclusive-kt subjet: the first
    output of :func:`subjet_groups` (see there)."""
    return subjet_groups(pt, eta, phi, mask, n_subjets)[0]


def subjet_groups(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mask: np.ndarray,
                  n_subjets: int) -> tuple[np.ndarray, np.ndarray]:
    """Per jet, the permutation that groups its particles by exclusive-kt subjet.

    ``pt`` [GeV], ``eta``, ``phi``: (n_jets, n) padded particle arrays (massless particles;
    angles absolute or relative to the jet axis), ``mask`` (n_jets, n) the real ones. Each jet
    is reclustered with kt (R = ``MAX_R``, E scheme) into ``n_subjets`` exclusive subjets (the
    axes of N-subjettiness, Thaler & Van Tilburg, arXiv:1011.2268); every particle joins the
    nearest axis in (y, phi); subjets are ranked by their pT sum, particles inside a subjet by
    pT. Returns (order, group), both (n_jets, n) int64: ``order`` the indices, real particles
    first in that order, padding last (``np.take_along_axis(values, order[..., None], 1)``
    reorders (n_jets, n, F) values); ``group`` the subjet rank (0 = hardest) of each
    particle in the new order, -1 at padding.
    """
    if n_subjets < 1:
        raise ValueError(f"n_subjets must be >= 1, got {n_subjets}")
    mask = np.asarray(mask, dtype=bool)
    pt, eta, phi = (np.where(mask, np.asarray(a, dtype=np.float64), 0.0)
                    for a in (pt, eta, phi))
    counts = mask.sum(axis=1)
    flat = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta),
            "E": pt * np.cosh(eta)}
    p4 = ak.unflatten(ak.zip({k: v[mask] for k, v in flat.items()}, with_name="Momentum4D"),
                      counts)
    sequence = fastjet.ClusterSequence(p4, jet_definition("kt", MAX_R, "E"))
    axes = exclusive_jets_up_to(sequence, n_subjets)
    padded = {f: ak.to_numpy(ak.fill_none(ak.pad_none(axes[f], n_subjets, clip=True), np.nan))
              for f in ("px", "py", "pz", "E")}
    axis_y = kin.rapidity(padded["E"], padded["pz"], padded["px"], padded["py"])
    axis_phi = kin.phi(padded["px"], padded["py"])
    dr2 = ((eta[:, :, None] - axis_y[:, None, :]) ** 2
           + kin.delta_phi(phi[:, :, None], axis_phi[:, None, :]) ** 2)
    owner = np.argmin(np.where(np.isfinite(dr2), dr2, np.inf), axis=2)  # (n_jets, n)
    subjet_pt = np.zeros((len(pt), n_subjets))
    np.add.at(subjet_pt, (np.nonzero(mask)[0], owner[mask]), pt[mask])
    rank = np.argsort(np.argsort(-subjet_pt, axis=1, kind="stable"), axis=1)
    owner_rank = np.take_along_axis(rank, owner, axis=1)
    key = owner_rank * (pt.max() + 1.0) - pt
    order = np.argsort(np.where(mask, key, np.inf), axis=1, kind="stable")
    group = np.where(np.take_along_axis(mask, order, axis=1),
                     np.take_along_axis(owner_rank, order, axis=1), -1)
    return order, group
