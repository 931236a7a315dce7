"""Truth vs generated histograms where each generator carries an uncertainty band: the spread
over Bayesian weight draws (JetGPT, thesis Sec. 5.1.4 "Bayesian network"), with ratio panels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import mplhep as hep
import numpy as np

from jetfm.plots.style import (
    REFERENCE_COLOR,
    mark_out_of_range,
    place_legend,
    ratio_figure,
    save_figure,
)


def band_summary(histograms: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 1; 0 for one draw) over draws of equal-shape
    histograms (n_draws, ...) -> two arrays of the histogram's shape."""
    h = np.asarray(histograms, dtype=np.float64)
    if h.ndim < 2 or len(h) == 0:
        raise ValueError(f"band_summary: need (n_draws, ...) histograms, got shape {h.shape}")
    return h.mean(axis=0), (h.std(axis=0, ddof=1) if len(h) > 1 else np.zeros(h.shape[1:]))


def _density(values: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised histogram (to the sample size; out-of-range values count in the norm) and
    its Poisson error."""
    values = np.asarray(values, dtype=np.float64)
    counts, _ = np.histogram(values, bins)
    widths = np.diff(bins)
    total = max(len(values), 1)
    return counts / total / widths, np.sqrt(counts) / total / widths


def plot_with_bands(truth: np.ndarray, draws: Mapping[str, Sequence[np.ndarray]],
                    bins: np.ndarray, path: str | Path, *, xlabel: str,
                    truth_label: str = "Truth", logy: bool = False,
                    ratio_range: tuple[float, float] = (0.0, 2.0), title: str | None = None,
                    ylabel: str = "Normalised") -> Path:
    """Normalised histogram of ``truth`` (filled, with its statistical error in the ratio
    panel) and, per generator, the mean over its weight draws (each draw a 1-D sample,
    normalised on its own) with a +-1 standard deviation band; the ratio panel divides by the
    truth. Ratio points outside ``ratio_range`` are marked by arrows at the panel's edge."""
    bins = np.asarray(bins, dtype=np.float64)
    centres = 0.5 * (bins[1:] + bins[:-1])
    fig, ax, ax_ratio = ratio_figure()
    ref, ref_err = _density(truth, bins)
    hep.histplot(ref, bins, ax=ax, histtype="fill", alpha=0.25, color=REFERENCE_COLOR,
                 label=f"{truth_label} ({len(truth):,})")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(ref > 0, ref_err / ref, np.nan)
    ax_ratio.stairs(1 + rel, bins, baseline=1 - rel, fill=True, color="grey", alpha=0.4)
    ax_ratio.axhline(1.0, color=REFERENCE_COLOR, lw=1)
    for name, samples in draws.items():
        hists = [_density(s, bins)[0] for s in samples]
        mean, std = band_summary(hists)
        n_events = int(np.mean([len(s) for s in samples])) if samples else 0
        artists = hep.histplot(mean, bins, ax=ax, histtype="step",
                               label=f"{name} ({len(samples)} draws, ~{n_events:,} each)")
        color = artists[0].stairs.get_edgecolor()
        ax.stairs(mean + std, bins, baseline=np.maximum(mean - std, 0), fill=True,
                  color=color, alpha=0.25)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref > 0, mean / ref, np.nan)
            band = np.where(ref > 0, std / ref, np.nan)
        ax_ratio.stairs(ratio + band, bins, baseline=ratio - band, fill=True, color=color,
                        alpha=0.25)
        ax_ratio.stairs(ratio, bins, color=color)
        mark_out_of_range(ax_ratio, centres, ratio, ratio_range, color=color)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize="medium")
    ax_ratio.set_ylim(*ratio_range)
    ax_ratio.set_ylabel("Ratio", fontsize="small")  # to truth; short: the panel is low
    ax_ratio.set_xlabel(xlabel)
    place_legend(ax, fontsize="small")
    return save_figure(fig, path)


def plot_counts_with_bands(truth: np.ndarray, truth_err: np.ndarray,
                           draws: Mapping[str, np.ndarray], x: np.ndarray, path: str | Path, *,
                           xlabel: str, ylabel: str, logy: bool = True,
                           vline: float | None = None, vline_label: str | None = None,
                           ratio_range: tuple[float, float] = (0.0, 2.0)) -> Path:
    """Discrete values per ``x`` (multiplicity fractions, staircase ratios): truth as points
    with errors, each generator's draws (n_draws, len(x)) as mean with a +-1 std band, and the
    ratio to the truth. NaN entries (no events) are left out. ``vline``: a marker, e.g. the
    largest training multiplicity."""
    x = np.asarray(x, dtype=np.float64)
    fig, ax, ax_ratio = ratio_figure()
    ax.errorbar(x, truth, yerr=truth_err, fmt="o", color=REFERENCE_COLOR, label="Truth")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = truth_err / truth
    ax_ratio.fill_between(x, 1 - rel, 1 + rel, color="grey", alpha=0.4, step="mid")
    ax_ratio.axhline(1.0, color=REFERENCE_COLOR, lw=1)
    for name, values in draws.items():
        mean, std = band_summary(values)
        line = ax.step(x, mean, where="mid", label=f"{name} ({len(values)} draws)")[0]
        color = line.get_color()
        ax.fill_between(x, mean - std, mean + std, step="mid", color=color, alpha=0.25)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio, band = mean / truth, std / truth
        ax_ratio.step(x, ratio, where="mid", color=color)
        ax_ratio.fill_between(x, ratio - band, ratio + band, step="mid", color=color,
                              alpha=0.25)
        mark_out_of_range(ax_ratio, x, ratio, ratio_range, color=color)
    if vline is not None:
        for a in (ax, ax_ratio):
            a.axvline(vline, color="grey", ls="--", lw=1)
        if vline_label:
            ax.text(vline, 0.02, f" {vline_label}", transform=ax.get_xaxis_transform(),
                    va="bottom", fontsize="small", color="grey")
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax_ratio.set_ylim(*ratio_range)
    ax_ratio.set_ylabel("Ratio", fontsize="small")  # to truth; short: the panel is low
    ax_ratio.set_xlabel(xlabel)
    place_legend(ax, fontsize="small")
    return save_figure(fig, path)
