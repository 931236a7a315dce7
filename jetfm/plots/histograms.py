"""Generated-vs-reference histograms with ratio panels, one PNG per observable."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jetfm.plots.style import hist_with_ratio, ratio_figure, save_figure


def default_bins(
    reference: np.ndarray, n_bins: int = 40, discrete: bool = False, coverage: float = 0.998
) -> np.ndarray:
    """Bin edges spanning the central ``coverage`` fraction of the finite reference values.

    ``discrete``: unit-width bins centred on integers (multiplicities), at most ``n_bins``
    wide steps of an integer width.
    """
    finite = np.asarray(reference, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        raise ValueError("reference has no finite values to derive bins from")
    tail = 0.5 * (1.0 - coverage)
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    if discrete:
        width = max(1, int(np.ceil((hi - lo + 1) / n_bins)))
        return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 0.5 + width, width)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n_bins + 1)


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
    ``path`` (PNG). Values outside the bins or non-finite are counted in the legend."""
    if bins is None:
        bins = default_bins(reference, discrete=discrete)
    fig, ax_main, ax_ratio = ratio_figure()
    hist_with_ratio(
        ax_main, ax_ratio, reference, others, bins,
        reference_label=reference_label, xlabel=xlabel, ratio_label="Ratio to ref.", logy=logy,
    )
    return save_figure(fig, path)
