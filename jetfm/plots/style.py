"""Plot style and the histogram-with-ratio building block used by every jetfm figure.

:func:`use_style` applies the mplhep CMS style (bundled fonts, no TeX) once per process.
:func:`hist_with_ratio` draws normalised histograms of a reference and any number of other
samples with a ratio panel (other / reference) and Poisson error bars; values outside the
bins or non-finite are counted and shown in the legend, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

_STYLE_APPLIED = False
REFERENCE_COLOR = "black"


def use_style() -> None:
    """Apply the mplhep CMS style once (idempotent; works with the Agg backend, no TeX)."""
    global _STYLE_APPLIED
    if _STYLE_APPLIED:
        return
    hep.style.use("CMS")
    plt.rcParams["text.usetex"] = False
    _STYLE_APPLIED = True


def ratio_figure(figsize: tuple[float, float] = (8.0, 8.0)) -> tuple[Figure, Axes, Axes]:
    """A figure with a main panel over a shared-x ratio panel (3:1 heights)."""
    use_style()
    fig, (ax_main, ax_ratio) = plt.subplots(
        2, 1, figsize=figsize, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    return fig, ax_main, ax_ratio


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as ``path`` (PNG, parents created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _density(values: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(density, Poisson error, n outside the bins or non-finite) of a 1-D sample.

    Normalised to the whole sample, so the area inside the bins is the fraction inside them.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    counts, _ = np.histogram(values[np.isfinite(values)], bins=bins)
    n_outside = len(values) - int(counts.sum())
    norm = max(len(values), 1) * np.diff(bins)
    return counts / norm, np.sqrt(counts) / norm, n_outside


def _label(name: str, n_outside: int) -> str:
    return f"{name} ({n_outside} outside)" if n_outside else name


def hist_with_ratio(
    ax_main: Axes,
    ax_ratio: Axes,
    reference: np.ndarray,
    others: Mapping[str, np.ndarray],
    bins: int | np.ndarray,
    *,
    reference_label: str = "Reference",
    xlabel: str | None = None,
    ratio_label: str = "Ratio",
    ratio_range: tuple[float, float] = (0.5, 1.5),
    logy: bool = False,
) -> dict[str, int]:
    """Histograms of ``reference`` and each of ``others``, each normalised to its full sample
    size, plus their ratio panel.

    ``reference`` and every entry of ``others`` are 1-D samples; ``bins`` is a count (edges from
    the finite reference range) or an array of edges. The reference's statistical uncertainty
    is a grey band around 1 in the ratio panel; other samples carry Poisson error bars.
    Returns, per sample (reference under ``reference_label``), the number of values that fell
    outside the bins or were non-finite; the legend shows them too.
    """
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    if np.isscalar(bins):
        finite = reference[np.isfinite(reference)]
        if len(finite) == 0:
            raise ValueError("reference sample has no finite values to derive bins from")
        bins = np.histogram_bin_edges(finite, bins=int(bins))
    bins = np.asarray(bins, dtype=np.float64)

    ref_density, ref_err, ref_outside = _density(reference, bins)
    outside = {reference_label: ref_outside}
    hep.histplot(
        ref_density, bins, ax=ax_main, color=REFERENCE_COLOR, histtype="fill", alpha=0.25,
        label=_label(reference_label, ref_outside),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = np.where(ref_density > 0, ref_err / ref_density, np.nan)
    ax_ratio.stairs(1 + rel_err, bins, baseline=1 - rel_err, fill=True, color="grey", alpha=0.4)
    ax_ratio.axhline(1.0, color=REFERENCE_COLOR, lw=1)

    for name, sample in others.items():
        density, err, n_out = _density(sample, bins)
        outside[name] = n_out
        artists = hep.histplot(
            density, bins, yerr=err, ax=ax_main, histtype="step", label=_label(name, n_out)
        )
        color = artists[0].stairs.get_edgecolor()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref_density > 0, density / ref_density, np.nan)
            ratio_err = np.where(ref_density > 0, err / ref_density, np.nan)
        centres = 0.5 * (bins[1:] + bins[:-1])
        ax_ratio.errorbar(centres, ratio, yerr=ratio_err, fmt="o", ms=3, color=color)

    ax_main.set_ylabel("Normalised density")
    if logy:
        ax_main.set_yscale("log")
    ax_main.legend(fontsize="small")
    ax_ratio.set_ylim(*ratio_range)
    ax_ratio.set_ylabel(ratio_label)
    ax_ratio.set_xlim(bins[0], bins[-1])
    if xlabel:
        ax_ratio.set_xlabel(xlabel)
    return outside
