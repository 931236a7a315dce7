"""Generated-vs-reference histograms with ratio panels, one PNG per observable."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jetfm.plots.style import default_bins, hist_with_ratio, ratio_figure, save_figure

__all__ = ["default_bins", "plot_distribution"]  # default_bins lives in jetfm.plots.style


def plot_distribution(
    reference: np.ndarray,
    others: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    xlabel: str,
    bins: np.ndarray | None = None,
    discrete: bool = False,
    reference_label: str = "Reference",
    logy: bool = False,
) -> Path:
    """Write a normalised histogram of ``reference`` and ``others`` with a ratio panel to
    ``path`` (PNG). Without ``bins``, the edges cover the central 99 % of every sample
    (:func:`default_bins`), so a generated sample away from the reference is drawn, not just
    counted. Values outside the bins or non-finite are counted in the legend (below / above /
    non-finite); ratio points beyond the ratio panel are marked by arrows at its edge."""
    if bins is None:
        bins = default_bins(reference, *others.values(), discrete=discrete)
    fig, ax_main, ax_ratio = ratio_figure()
    hist_with_ratio(
        ax_main, ax_ratio, reference, others, bins,
        reference_label=reference_label, xlabel=xlabel, ratio_label="Ratio to ref.", logy=logy,
    )
    return save_figure(fig, path)
