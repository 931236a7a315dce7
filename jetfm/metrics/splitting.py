r"""A per-splitting negative log-likelihood comparable between any two splitting models.

Models of different kinds (discrete tokens, continuous mixtures) have likelihoods in different
spaces. :func:`binned_splitting_nll` puts them in one: each true splitting is assigned a bin of
fixed Lund-variable bins (``ln 1/Delta``, ``ln z``, ``psi``; :mod:`jetfm.physics.lund`), the model
samples ``n_samples`` children pairs for the same node (given the same true tree context), and
the model's probability of the true bin is estimated with add-alpha smoothing,

    p = (n_in_true_bin + alpha) / (n_samples + alpha * n_bins),

reported as NLL = -ln p in nats per splitting. A model that always samples the true splitting
scores ``-ln((n + alpha) / (n + alpha n_bins))`` (-> 0 for many samples; reported as
``oracle_nll``), one that spreads its samples evenly over the bins ``ln n_bins``. Values
outside the edges fall into the first or last bin of their variable (no splitting is dropped).

:func:`lund_plane_distance` compares the primary Lund-plane densities of generated and true
jets, with the floor of two disjoint parts of the truth.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from jetfm.metrics.generation import floor_split
from jetfm.models.splitting import SplittingModel
from jetfm.physics import kinematics as kin
from jetfm.physics.lund import LUND_X_BINS, LUND_Y_BINS, lund_density, pair_coordinates
from jetfm.physics.trees import JetTrees

# Interior bin edges per variable: len(edges) + 1 bins each (open first and last bins).
DEFAULT_BINS: dict[str, np.ndarray] = {
    "ln_inv_delta": np.array([0.5, 1.0, 1.5, 2.0, 3.0]),
    "ln_z": np.array([-4.0, -3.0, -2.0, -1.5, -1.0]),
    "psi": np.array([-0.5 * np.pi, 0.0, 0.5 * np.pi]),
}


def lund_bins(harder: np.ndarray, softer: np.ndarray,
              bins: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Flat Lund bin index of splittings into children (..., 4) [GeV]; the children are
    ordered by pT first, so ``harder``/``softer`` need not be."""
    bins = DEFAULT_BINS if bins is None else bins
    swap = (kin.pt(softer[..., 0], softer[..., 1]) > kin.pt(harder[..., 0], harder[..., 1]))
    a = np.where(swap[..., None], softer, harder)
    b = np.where(swap[..., None], harder, softer)
    lund = pair_coordinates(a, b)
    with np.errstate(divide="ignore"):  # Delta = 0 or z = 0 (copied children): edge bins
        values = {"ln_inv_delta": -np.log(lund["delta"]), "ln_z": np.log(lund["z"]),
                  "psi": lund["psi"]}
    unknown = set(bins) - set(values)
    if unknown:
        raise ValueError(f"unknown Lund variables {sorted(unknown)}; known: {sorted(values)}")
    index = np.zeros(values["psi"].shape, dtype=np.int64)
    for name, edges in bins.items():
        index = index * (len(edges) + 1) + np.digitize(values[name], edges)
    return index


def binned_splitting_nll(
    model: SplittingModel,
    trees: JetTrees,
    nodes: np.ndarray,
    n_samples: int = 200,
    bins: dict[str, np.ndarray] | None = None,
    *,
    alpha: float = 0.5,
    seed: int = 1,
) -> dict[str, Any]:
    """NLL [nats per splitting] of the true splittings at internal ``nodes`` in Lund bins.

    Returns ``nll`` (mean), ``nll_error`` (its standard error), ``per_splitting`` (array),
    ``n_splittings``, ``n_samples``, ``n_bins``, ``alpha``, ``oracle_nll`` and
    ``uniform_nll`` (= ln n_bins) for reference.
    """
    bins = DEFAULT_BINS if bins is None else bins
    nodes = np.asarray(nodes, dtype=np.int64)
    if len(nodes) == 0 or np.any(trees.is_leaf[nodes]):
        raise ValueError("binned_splitting_nll needs a non-empty set of internal nodes")
    if n_samples < 1 or alpha <= 0:
        raise ValueError(f"need n_samples >= 1 and alpha > 0, got {n_samples}, {alpha}")
    n_bins = int(np.prod([len(e) + 1 for e in bins.values()]))
    a, b = trees.children(nodes)
    true_bin = lund_bins(trees.p4[a], trees.p4[b], bins)
    harder, softer = model.sample_children(trees, nodes, n_samples, seed)
    sampled = lund_bins(harder, softer, bins)
    hits = (sampled == true_bin[:, None]).sum(axis=1)
    nll = -np.log((hits + alpha) / (n_samples + alpha * n_bins))
    return {
        "nll": float(nll.mean()),
        "nll_error": float(nll.std(ddof=1) / np.sqrt(len(nll))) if len(nll) > 1 else float("nan"),
        "per_splitting": nll,
        "n_splittings": len(nodes),
        "n_samples": n_samples,
        "n_bins": n_bins,
        "alpha": alpha,
        "oracle_nll": float(-np.log((n_samples + alpha) / (n_samples + alpha * n_bins))),
        "uniform_nll": float(np.log(n_bins)),
    }


def lund_plane_distance(truth: ak.Array, generated: ak.Array, seed: int = 1, merge: int = 3,
                        floor_sample: ak.Array | None = None) -> dict[str, float]:
    """Distance between primary Lund-plane densities [splittings per jet], with its floor.

    ``truth``, ``generated``: per-jet Lund records (:func:`jetfm.physics.lund.primary_lund`).
    The distance is 0.5 sum |n_a - n_b| over bins of the mean number of splittings per jet in
    each bin: the bins of :func:`jetfm.physics.lund.lund_density` merged ``merge`` x ``merge``
    (8 x 8 by default, so that a few hundred jets fill them). How many primary splittings a
    jet has counts as well as where they lie. The truth is split at random into as many
    pseudo-generated jets as there are generated ones and a reference; ``distance`` compares
    the generated jets with that reference, ``floor`` the pseudo-generated ones (NaN, and the
    whole truth as reference, when the truth has fewer than twice as many jets).
    ``floor_sample``: per-jet Lund records of true jets disjoint from ``truth`` and from the
    jets that seeded ``generated``; the floor is then ``floor_sample`` vs the whole ``truth``
    (no random split), like-for-like when ``generated`` was grown from other true jets' roots.
    ``splittings_per_jet_truth`` / ``_generated``: primary splittings per jet in the plane.
    """
    area = np.outer(np.diff(LUND_X_BINS), np.diff(LUND_Y_BINS))
    nx, ny = area.shape
    if nx % merge or ny % merge:
        raise ValueError(f"merge={merge} does not divide the {nx} x {ny} Lund-plane bins")

    def per_jet(lund: ak.Array) -> np.ndarray:
        counts = lund_density(lund)[0] * area
        return counts.reshape(nx // merge, merge, ny // merge, merge).sum(axis=(1, 3))

    split = None if floor_sample is not None else floor_split(len(truth), len(generated), seed)
    reference = per_jet(truth if split is None else truth[split.reference])
    gen = per_jet(generated)
    floor = float("nan")
    if floor_sample is not None:
        floor = float(0.5 * np.abs(per_jet(floor_sample) - reference).sum())
    elif split is not None:
        floor = float(0.5 * np.abs(per_jet(truth[split.pseudo_generated]) - reference).sum())
    return {"distance": float(0.5 * np.abs(gen - reference).sum()), "floor": floor,
            "splittings_per_jet_truth": float(per_jet(truth).sum()),
            "splittings_per_jet_generated": float(gen.sum())}
