"""Per-class distributions of jet observables (``jetfm plot``), one PNG per observable."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np

from jetfm.data.classes import class_name
from jetfm.plots.style import (
    default_bins,
    outside_counts,
    outside_label,
    place_legend,
    save_figure,
    use_style,
)

# Fixed binning where physics sets the scale; None = from the data (jetfm.plots.style
# .default_bins: the union of every class's 0.5-99.5 % range). A fixed grid is extended by
# whole bins when the classes' ranges reach beyond it (at most to twice its bins; further than
# that the data-driven bins are used), so no class is drawn only as an "outside" count.
DEFAULT_BINS: dict[str, np.ndarray | None] = {
    "pt": None,
    "eta": np.linspace(-2.5, 2.5, 41),
    "mass": np.linspace(0.0, 300.0, 61),
    "sdmass": np.linspace(0.0, 300.0, 61),
    "n_particles": None,
    "tau21": np.linspace(0.0, 1.1, 45),
    "tau32": np.linspace(0.0, 1.1, 45),
}


def _bins(name: str, samples: list[np.ndarray]) -> np.ndarray:
    """Edges for observable ``name`` covering the central 99 % of every sample (class)."""
    finite = [s for s in samples if np.isfinite(s).any()]
    if not finite:
        fixed = DEFAULT_BINS.get(name)
        return fixed if fixed is not None else np.linspace(0.0, 1.0, 41)
    wide = default_bins(*finite, discrete=name == "n_particles",  # classes: no reference
                        reference_spans=None)
    fixed = DEFAULT_BINS.get(name)
    if fixed is None:
        return wide
    width = fixed[1] - fixed[0]
    n_low = max(0, int(np.ceil((fixed[0] - wide[0]) / width - 1e-9)))
    n_high = max(0, int(np.ceil((wide[-1] - fixed[-1]) / width - 1e-9)))
    if n_low + n_high > len(fixed) - 1:
        return wide
    return fixed[0] + width * np.arange(-n_low, len(fixed) + n_high)


def plot_observables_by_class(
    observables: dict[str, np.ndarray],
    labels: np.ndarray,
    out_dir: str | Path,
    *,
    names: tuple[str, ...] = tuple(DEFAULT_BINS),
    axis_labels: dict[str, str] | None = None,
    title: str = "",
) -> list[Path]:
    """Normalised histograms of each observable, one line per class, saved as PNGs.

    ``observables`` maps names to (n_jets,) arrays, ``labels`` are class indices. The bins
    cover every class (see :data:`DEFAULT_BINS`); values below / above them and non-finite
    ones are counted in the legend, never hidden. The legend sits where it covers no curve
    (:func:`jetfm.plots.style.place_legend`).
    Returns the written paths (``<out_dir>/<name>.png``).
    """
    use_style()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    axis_labels = axis_labels or {}
    classes = np.unique(labels)
    written = []
    for name in names:
        values = np.asarray(observables[name], dtype=np.float64)
        per_class = [values[labels == c] for c in classes]
        bins = _bins(name, per_class)
        fig, ax = plt.subplots(figsize=(8, 6))
        for c, sample in zip(classes, per_class, strict=True):
            counts, _ = np.histogram(sample[np.isfinite(sample)], bins=bins)
            density = counts / max(counts.sum(), 1) / np.diff(bins)
            label = outside_label(f"{class_name(int(c))}, {len(sample)} jets",
                                  outside_counts(sample, bins))
            hep.histplot(density, bins, ax=ax, histtype="step", lw=1.8, label=label)
        ax.set_xlabel(axis_labels.get(name, name))
        ax.set_ylabel("Normalised density")
        ax.set_xlim(bins[0], bins[-1])
        ax.set_ylim(0, ax.get_ylim()[1] * 1.4)  # room for the legend
        if title:
            ax.set_title(title, fontsize="medium")
        place_legend(ax, fontsize="x-small", ncols=2)
        written.append(save_figure(fig, out_dir / f"{name}.png"))
    return written
