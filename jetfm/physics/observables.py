r"""Jet substructure observables: N-subjettiness, soft-drop mass, a standard observable table.

Definitions (momenta, masses in GeV; angles in rad):

* **N-subjettiness** (Thaler, Van Tilburg, arXiv:1011.2268, normalised measure):
  ``tau_N = (1 / d0) sum_i pT_i min_k (Delta R_{i,k})^beta`` with
  ``d0 = sum_i pT_i r0^beta`` (defaults beta = 1, r0 = 0.8). The N axes are the exclusive-kt
  axes: the constituents are reclustered with the kt algorithm (E-scheme, R = FastJet's
  ``max_allowable_R`` so everything merges, as fastjet-contrib's ``ExclusiveJetAxes``) and
  ``exclusive_jets(N)`` is taken. ``Delta R`` is measured in (rapidity y, phi), as FastJet's
  ``PseudoJet::delta_R``, which makes tau_N exactly invariant under longitudinal boosts.
  A jet with ``n_particles <= N`` has ``tau_N = 0`` exactly (each particle is its own axis).
* **Zero-pT and null particles** (e.g. (px, py, pz, E) = (0, 0, 0.5, 0.5) or (0, 0, 0, 0))
  carry zero weight: tau_N and sdmass equal those of the jet without them. Their rapidity is
  capped as FastJet's (:mod:`jetfm.physics.kinematics`, ``MAX_RAP = 1e5``), which puts them
  out of reach of every real particle, so FastJet merges them with the beam, never into an
  axis or the groomed jet, and their term ``pT dR^beta`` is 0. A jet whose constituents all
  have pT = 0 has ``tau_N = 0`` (empty weighted sum). Every observable is finite for every jet
  with at least one constituent, except the documented NaN ratios below.
  Exclusive-kt axes are not re-optimised, so tau_N decreasing with N is typical, not
  guaranteed.
* **Ratios** ``tau21 = tau2 / tau1`` and ``tau32 = tau3 / tau2`` are **NaN** where the
  denominator is 0 (jets with 1 resp. 2 constituents): no fake number is substituted.
* **Soft-drop mass** (Larkoski, Marzani, Soyez, Thaler, arXiv:1402.2657): recluster with
  Cambridge/Aachen (R = ``max_allowable_R``), walk the harder (larger-pT) branch from the top;
  at each declustering of j into j1, j2 stop as soon as
  ``min(pT1, pT2) / (pT1 + pT2) > z_cut (Delta R_12 / r0)^beta``; the groomed jet is that j and
  the result is its mass (a single particle left: its mass). Defaults beta = 0, z_cut = 0.1.
  This is fastjet-contrib's ``SoftDrop`` (scalar-z symmetry measure, no mass-drop condition);
  it is computed on :mod:`jetfm.physics.trees` C/A trees with
  :func:`jetfm.physics.lund.softdrop_mass` (all jets at once in numpy, several times faster than
  fastjet's ``exclusive_jets_softdrop_grooming``, which the tests compare it with).
* Jets without constituents give NaN for every float observable.
* Masses follow :mod:`jetfm.physics.kinematics`: a negative m^2 from rounding gives -sqrt|m^2|.
"""

from __future__ import annotations

from collections.abc import Callable

import awkward as ak
import numpy as np
from tqdm.auto import tqdm

from jetfm.data.batch import JetBatch
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import MAX_R, cluster, constituents_p4, exclusive_jets_up_to

OBSERVABLE_LABELS: dict[str, str] = {
    "pt": r"$p_{T}^{jet}$ [GeV]",
    "eta": r"$\eta^{jet}$",
    "phi": r"$\phi^{jet}$ [rad]",
    "mass": r"$m_{jet}$ [GeV]",
    "n_particles": r"$N_{const}$",
    "tau1": r"$\tau_{1}$",
    "tau2": r"$\tau_{2}$",
    "tau3": r"$\tau_{3}$",
    "tau4": r"$\tau_{4}$",
    "tau21": r"$\tau_{21} = \tau_2 / \tau_1$",
    "tau32": r"$\tau_{32} = \tau_3 / \tau_2$",
    "sdmass": r"$m_{SD}$ [GeV]",
}


# Jets per FastJet call: bounds memory and lets long batches show progress.
CHUNK_JETS = 5000


def _in_chunks(
    batch: JetBatch, compute: Callable[[JetBatch], np.ndarray], width: int | None, desc: str
) -> np.ndarray:
    """``compute`` on the jets with constituents, :data:`CHUNK_JETS` at a time with a progress
    bar. Output (n_jets,) or (n_jets, width); rows of jets without constituents stay NaN."""
    filled = np.flatnonzero(batch.n_particles > 0)
    out = np.full((len(batch),) if width is None else (len(batch), width), np.nan)
    starts = range(0, len(filled), CHUNK_JETS)
    for s in tqdm(starts, desc=desc, unit="chunk", disable=len(starts) < 2):
        rows = filled[s : s + CHUNK_JETS]
        out[rows] = compute(batch[rows])
    return out


def _padded(subjets: ak.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rapidity, phi) of up to ``n`` subjets per jet, (n_jets, n), NaN where absent."""
    p4 = [
        ak.to_numpy(ak.fill_none(ak.pad_none(subjets[f], n, clip=True), np.nan))
        for f in ("px", "py", "pz", "E")
    ]
    return kin.rapidity(p4[3], p4[2], p4[0], p4[1]), kin.phi(p4[0], p4[1])


def _taus(jets: JetBatch, n_max: int, beta: float, r0: float) -> np.ndarray:
    """tau_1 .. tau_{n_max} of jets that all have constituents, (n_jets, n_max)."""
    particles = ak.flatten(constituents_p4(jets))
    p4 = [ak.to_numpy(particles[f]) for f in ("px", "py", "pz", "E")]
    y = kin.rapidity(p4[3], p4[2], p4[0], p4[1])
    phi, pt = kin.phi(p4[0], p4[1]), kin.pt(p4[0], p4[1])
    jet_of = np.repeat(np.arange(len(jets)), jets.n_particles)
    d0 = np.bincount(jet_of, weights=pt, minlength=len(jets)) * r0**beta
    sequence = cluster(jets, "kt", MAX_R, "E")
    tau = np.empty((len(jets), n_max))
    for n in range(1, n_max + 1):
        axis_y, axis_phi = _padded(exclusive_jets_up_to(sequence, n), n)
        dr2 = np.full_like(pt, np.inf)
        for k in range(n):  # fmin skips the NaN of absent axes (jets with < n particles)
            dphi = kin.delta_phi(phi, axis_phi[jet_of, k])
            dr2 = np.fmin(dr2, (y - axis_y[jet_of, k]) ** 2 + dphi**2)
        numerator = np.bincount(jet_of, weights=pt * dr2 ** (beta / 2), minlength=len(jets))
        # d0 = 0: every constituent has pT = 0, so the numerator is 0 too (nothing to resolve)
        tau[:, n - 1] = numerator / np.where(d0 > 0, d0, 1.0)
    return tau


def nsubjettiness(
    batch: JetBatch, n_max: int = 4, beta: float = 1.0, r0: float = 0.8
) -> np.ndarray:
    """tau_1 .. tau_{n_max} with exclusive-kt axes, (n_jets, n_max); see the module docstring.

    Jets with ``n_particles <= N`` get ``tau_N = 0``; jets without constituents NaN.
    Raises :class:`jetfm.data.JetDataError` for non-finite momenta.
    """
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    if beta <= 0 or r0 <= 0:
        raise ValueError(f"beta and r0 must be positive, got beta={beta}, r0={r0}")
    return _in_chunks(batch, lambda jets: _taus(jets, n_max, beta, r0), n_max, "N-subjettiness")


def softdrop_mass(
    batch: JetBatch, beta: float = 0.0, z_cut: float = 0.1, r0: float = 0.8
) -> np.ndarray:
    """Soft-drop groomed jet mass [GeV], (n_jets,); NaN for jets without constituents.

    Raises :class:`jetfm.data.JetDataError` for non-finite momenta.
    """
    if beta < 0 or not 0 <= z_cut < 1 or r0 <= 0:
        raise ValueError(
            f"soft drop needs beta >= 0, 0 <= z_cut < 1, r0 > 0; got {beta}, {z_cut}, {r0}"
        )
    # Imported here: jetfm.physics.trees uses this module's CHUNK_JETS.
    from jetfm.physics.lund import softdrop_mass as groomed_mass
    from jetfm.physics.trees import build_trees

    return groomed_mass(build_trees(batch, "cambridge"), beta, z_cut, r0)


def jet_observables(batch: JetBatch) -> dict[str, np.ndarray]:
    """Standard per-jet observables, each (n_jets,); keys as :data:`OBSERVABLE_LABELS`.

    Kinematics are the E-scheme sum of the constituents; tau_N as :func:`nsubjettiness`
    (beta = 1, r0 = 0.8), sdmass as :func:`softdrop_mass` (beta = 0, z_cut = 0.1).
    """
    empty = batch.n_particles == 0
    kinematics = {
        "pt": batch.jet_pt,
        "eta": batch.jet_eta,
        "phi": batch.jet_phi,
        "mass": batch.jet_mass,
    }
    out = {k: np.where(empty, np.nan, v) for k, v in kinematics.items()}
    out["n_particles"] = batch.n_particles
    tau = nsubjettiness(batch, n_max=4)
    out.update({f"tau{n}": tau[:, n - 1] for n in range(1, 5)})
    with np.errstate(invalid="ignore", divide="ignore"):
        out["tau21"] = np.where(tau[:, 0] > 0, tau[:, 1] / tau[:, 0], np.nan)
        out["tau32"] = np.where(tau[:, 1] > 0, tau[:, 2] / tau[:, 1], np.nan)
    out["sdmass"] = softdrop_mass(batch)
    return out
