r"""Lund-plane coordinates of the splittings of declustering trees, and soft drop on them.

For a splitting of node p into a (harder: larger pT) and b (softer), all from
:class:`jetfm.physics.trees.JetTrees`:

* ``delta`` = Delta R_ab in (rapidity y, azimuth phi), as FastJet's ``PseudoJet::delta_R``;
* ``kt`` = pT_b Delta [GeV];
* ``z`` = pT_b / (pT_a + pT_b) (0 when both have pT = 0);
* ``psi`` = atan2(y_b - y_a, phi_b - phi_a) [rad], the phi difference wrapped into (-pi, pi];
* ``m`` = mass of p [GeV].

Primary declusterings follow the harder branch from the root (Dreyer, Salam, Soyez,
arXiv:1807.04758); with a Cambridge/Aachen E-scheme tree they are fastjet-contrib's
``LundGenerator`` declusterings. Each jet's splittings come as a ragged awkward record array,
(n_jets, var) with the fields of :data:`LUND_FIELDS` plus ``node`` (local node index), in
depth-first order (primary ones from the root down).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from jetfm.physics import kinematics as kin
from jetfm.physics.trees import JetTrees

LUND_FIELDS: tuple[str, ...] = ("delta", "kt", "z", "psi", "m")
LUND_X_BINS = np.linspace(0.0, 6.0, 25)  # ln(1 / Delta)
LUND_Y_BINS = np.linspace(-3.0, 6.0, 25)  # ln(kt / GeV)


def lund_density(lund: ak.Array) -> tuple[np.ndarray, int]:
    """Per-jet density of splittings in (ln 1/Delta, ln kt) bins (n_x, n_y), and the number of
    splittings outside the plotted range (collinear ones, Delta = 0, among them)."""
    with np.errstate(divide="ignore"):
        x = -np.log(ak.to_numpy(ak.flatten(lund["delta"])))
        y = np.log(ak.to_numpy(ak.flatten(lund["kt"])))
    counts, _, _ = np.histogram2d(x, y, bins=(LUND_X_BINS, LUND_Y_BINS))
    area = np.outer(np.diff(LUND_X_BINS), np.diff(LUND_Y_BINS))
    return counts / (max(len(lund), 1) * area), len(x) - int(counts.sum())


def pair_coordinates(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """``delta, kt, z, psi`` of splittings into ``a`` (harder) and ``b`` (softer), given as
    four-momenta (..., 4) px, py, pz, E [GeV] (for children that are not in a tree)."""
    pt_a, pt_b = kin.pt(a[..., 0], a[..., 1]), kin.pt(b[..., 0], b[..., 1])
    dy = kin.rapidity(b[..., 3], b[..., 2], b[..., 0], b[..., 1]) - kin.rapidity(
        a[..., 3], a[..., 2], a[..., 0], a[..., 1]
    )
    dphi = kin.delta_phi(kin.phi(b[..., 0], b[..., 1]), kin.phi(a[..., 0], a[..., 1]))
    delta = np.hypot(dy, dphi)
    pt_sum = pt_a + pt_b
    z = pt_b / np.where(pt_sum > 0, pt_sum, 1.0)  # two pT = 0 children (beam-axis particles): 0
    return {"delta": delta, "kt": pt_b * delta, "z": z, "psi": np.arctan2(dy, dphi)}


def coordinates(trees: JetTrees, nodes: np.ndarray) -> dict[str, np.ndarray]:
    """Lund coordinates of the splittings at the flat internal-node indices ``nodes``."""
    a, b = trees.children(nodes)
    return {**pair_coordinates(trees.p4[a], trees.p4[b]), "m": trees.mass[nodes]}


def _lund(trees: JetTrees, keep: np.ndarray) -> ak.Array:
    """Lund coordinates of the internal nodes where ``keep`` (flat bool), depth-first."""
    order = trees.to_global(ak.to_numpy(ak.flatten(trees.depth_first_order())), trees.node_jet)
    nodes = order[keep[order] & ~trees.is_leaf[order]]
    columns = coordinates(trees, nodes)
    columns["node"] = nodes - trees.offsets[:-1][trees.node_jet[nodes]]
    counts = np.bincount(trees.node_jet[nodes], minlength=len(trees))
    return ak.unflatten(ak.zip(columns), counts)


def lund_splittings(trees: JetTrees) -> ak.Array:
    """Lund coordinates of every splitting (internal node), (n_jets, n_leaves - 1) records."""
    return _lund(trees, np.ones(len(trees.px), dtype=bool))


def primary_lund(trees: JetTrees) -> ak.Array:
    """Lund coordinates along the primary (harder) branch, root first, (n_jets, var) records."""
    return _lund(trees, trees.is_primary)


def softdrop_mass(
    trees: JetTrees, beta: float = 0.0, z_cut: float = 0.1, r0: float = 0.8
) -> np.ndarray:
    """Soft-drop groomed mass [GeV] per jet, (n_jets,); NaN for jets without constituents.

    Walks the primary branch of Cambridge/Aachen E-scheme trees and stops at the first
    splitting with ``z > z_cut (delta / r0)^beta``; the mass is that node's (the last particle's
    if none passes), as :func:`jetfm.physics.observables.softdrop_mass` defines it.
    """
    if trees.algorithm != "cambridge" or trees.recombination != "E":
        raise ValueError(
            "soft drop needs Cambridge/Aachen E-scheme trees, got "
            f"{trees.algorithm!r} with {trees.recombination!r}"
        )
    primary = trees.is_primary
    splits = np.flatnonzero(primary & ~trees.is_leaf)
    lund = coordinates(trees, splits)
    stop = primary & trees.is_leaf
    stop[splits] = lund["z"] > z_cut * (lund["delta"] / r0) ** beta
    # The first stop from the root: smallest depth per jet.
    candidates = np.flatnonzero(stop)
    jet_of = trees.node_jet[candidates]
    first = candidates[np.lexsort((trees.depth[candidates], jet_of))]
    first = first[np.diff(trees.node_jet[first], prepend=-1) != 0]
    out = np.full(len(trees), np.nan)
    out[trees.node_jet[first]] = trees.mass[first]
    return out
