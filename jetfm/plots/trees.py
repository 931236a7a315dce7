"""Figures of declustering trees: primary Lund-plane densities and drawn example trees."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, QuadMesh
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from jetfm.physics.lund import LUND_X_BINS, LUND_Y_BINS, lund_density
from jetfm.physics.trees import JetTrees
from jetfm.plots.style import save_figure, use_style

# Colours of the Lund ratio's bins that no colour scale can show: generated empty where the
# truth is not (ratio 0), and truth empty where the generated sample is not (ratio infinite).
RATIO_NONE_GENERATED = "black"
RATIO_NONE_IN_TRUTH = "gold"
RATIO_MIN_SPAN = 1.5  # the scale spans at least [1/1.5, 1.5], so agreement looks pale


def lund_ratio_norm(ratio: np.ndarray) -> LogNorm:
    """A logarithmic colour scale symmetric about 1, [1/r, r], with r the largest factor by
    which a finite, non-zero ratio differs from 1 (max of ratio and 1 / ratio; at least
    :data:`RATIO_MIN_SPAN`), so no such bin saturates the scale. ``ratio``: any shape, NaN
    for empty bins, 0 and +inf allowed (they are drawn in the colormap's under / over
    colours by :func:`draw_lund_ratio`)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    finite = ratio[np.isfinite(ratio) & (ratio > 0)]
    span = max(RATIO_MIN_SPAN, float(np.max(np.maximum(finite, 1.0 / finite)))
               if len(finite) else RATIO_MIN_SPAN)
    return LogNorm(vmin=1.0 / span, vmax=span)


def draw_lund_ratio(fig: Figure, ax: Axes, d_truth: np.ndarray, d_gen: np.ndarray
                    ) -> QuadMesh:
    """Draw generated / truth of two Lund-plane densities (n_x, n_y) on ``ax`` with a colour
    bar: a log scale symmetric about 1 covering every finite ratio (:func:`lund_ratio_norm`);
    bins with no generated splitting (ratio 0) in :data:`RATIO_NONE_GENERATED`, bins with none
    in the truth (ratio infinite) in :data:`RATIO_NONE_IN_TRUTH`, both empty left blank.
    Returns the mesh (its array holds the ratios drawn)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d_truth > 0, d_gen / d_truth, np.where(d_gen > 0, np.inf, np.nan))
    norm = lund_ratio_norm(ratio)
    # 0 and inf go to the under / over colours (LogNorm would mask 0 as "bad", i.e. blank)
    shown = np.where(ratio == 0, 0.5 * norm.vmin, np.where(np.isposinf(ratio),
                                                            2.0 * norm.vmax, ratio))
    cmap = plt.get_cmap("RdBu_r").with_extremes(under=RATIO_NONE_GENERATED,
                                                 over=RATIO_NONE_IN_TRUTH)
    mesh = ax.pcolormesh(LUND_X_BINS, LUND_Y_BINS, shown.T, norm=norm, cmap=cmap)
    n_zero, n_inf = int(np.sum(ratio == 0)), int(np.sum(np.isposinf(ratio)))
    fig.colorbar(mesh, ax=ax, extend="both", label="ratio")
    ax.set_title(f"generated / truth\n{RATIO_NONE_GENERATED}: none generated ({n_zero} bins), "
                 f"{RATIO_NONE_IN_TRUTH}: none in truth ({n_inf})", fontsize=14)
    return mesh


def plot_lund_planes(truth: ak.Array, generated: ak.Array, path: str | Path,
                     title: str = "") -> Path:
    """Truth and generated primary Lund-plane densities side by side, and their ratio
    (:func:`draw_lund_ratio`: a symmetric log scale that covers every ratio)."""
    use_style()
    (d_truth, out_truth), (d_gen, out_gen) = lund_density(truth), lund_density(generated)
    fig, axes = plt.subplots(1, 3, figsize=(26, 7.5), gridspec_kw={"wspace": 0.45})
    vmax = max(d_truth.max(), d_gen.max(), 1e-9)
    for ax, density, name, outside, n in (
        (axes[0], d_truth, "truth", out_truth, len(truth)),
        (axes[1], d_gen, "generated", out_gen, len(generated)),
    ):
        mesh = ax.pcolormesh(LUND_X_BINS, LUND_Y_BINS, np.where(density > 0, density, np.nan).T,
                             norm=LogNorm(vmin=vmax * 1e-3, vmax=vmax), cmap="viridis")
        ax.set_title(f"{name}: {n} jets, {outside} outside", fontsize=16)
        fig.colorbar(mesh, ax=ax, label="splittings / jet / area")
    draw_lund_ratio(fig, axes[2], d_truth, d_gen)
    for ax in axes:
        ax.set_xlabel(r"$\ln(1/\Delta)$")
        ax.set_ylabel(r"$\ln(k_t / \mathrm{GeV})$")
    if title:
        fig.suptitle(title, fontsize=18)
    return save_figure(fig, path)


def _layout(trees: JetTrees, jet: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, depth) of the nodes of one jet: leaves spread in depth-first order, every internal
    node above the middle of its children."""
    start, stop = trees.offsets[jet], trees.offsets[jet + 1]
    local = np.arange(stop - start)
    order = ak.to_numpy(trees.depth_first_order()[jet])
    leaf = trees.is_leaf[start:stop]
    x = np.zeros(len(local))
    leaves_in_order = order[leaf[order]]
    x[leaves_in_order] = np.arange(len(leaves_in_order))
    left, right = trees.left[start:stop], trees.right[start:stop]
    for node in local[~leaf]:  # clustering order: children before parents
        x[node] = 0.5 * (x[left[node]] + x[right[node]])
    return x, trees.depth[start:stop]


def plot_trees(trees_by_name: dict[str, JetTrees], jets: Sequence[int], path: str | Path
               ) -> Path:
    """Draw trees ``jets`` of each sample (one row per sample): nodes at depth (downwards)
    and depth-first position, line width ~ log pT of the child, leaves marked."""
    use_style()
    fig, axes = plt.subplots(len(trees_by_name), len(jets), squeeze=False,
                             figsize=(7 * len(jets), 5.5 * len(trees_by_name)))
    for row, (name, trees) in enumerate(trees_by_name.items()):
        for col, jet in enumerate(jets):
            ax = axes[row, col]
            start = trees.offsets[jet]
            x, depth = _layout(trees, jet)
            parent = trees.parent[start:trees.offsets[jet + 1]]
            child = np.flatnonzero(parent >= 0)
            pt = trees.pt[start + child]
            segments = np.stack([np.stack([x[parent[child]], -depth[parent[child]]], 1),
                                 np.stack([x[child], -depth[child]], 1)], axis=1)
            width = 0.3 + 1.2 * np.log1p(pt / 10.0)
            ax.add_collection(LineCollection(segments, linewidths=width, colors="tab:blue"))
            leaf = trees.is_leaf[start:trees.offsets[jet + 1]]
            ax.plot(x[leaf], -depth[leaf], "o", ms=2.5, color="tab:red")
            ax.autoscale()
            ax.set_xticks([])
            ax.set_title(f"{name}, jet {jet}: {int(leaf.sum())} leaves, depth {depth.max()}",
                         fontsize=14)
            ax.set_ylabel("- depth")
    return save_figure(fig, path)
