"""Per-class distributions of jet observables (``jetfm plot``), one PNG per observable."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np

from jetfm.data.classes import class_name
from jetfm.plots.style import use_style

# Fixed binning where physics sets the scale; None = from the data's 0.5-99.5 % range.
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
    fixed = DEFAULT_BINS.get(name)
    if fixed is not None:
        return fixed
    values = np.concatenate([s[np.isfinite(s)] for s in samples])
    lo, hi = np.percentile(values, [0.5, 99.5]) if len(values) else (0.0, 1.0)
    if name == "n_particles":
        return np.arange(np.floor(lo), np.ceil(hi) + 2) - 0.5
    return np.linspace(lo, hi if hi > lo else lo + 1.0, 41)


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

    ``observables`` maps names to (n_jets,) arrays, ``labels`` are class indices. Non-finite
    values and values outside the bins are counted in the legend, never hidden.
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
            n_out = len(sample) - int(counts.sum())
            density = counts / max(counts.sum(), 1) / np.diff(bins)
            label = f"{class_name(int(c))} ({len(sample)} jets"
            label += f", {n_out} outside)" if n_out else ")"
            hep.histplot(density, bins, ax=ax, histtype="step", lw=1.8, label=label)
        ax.set_xlabel(axis_labels.get(name, name))
        ax.set_ylabel("Normalised density")
        ax.set_xlim(bins[0], bins[-1])
        ax.set_ylim(0, ax.get_ylim()[1] * 1.4)  # room for the legend
        ax.legend(fontsize="x-small", ncols=2)
        if title:
            ax.set_title(title, fontsize="medium")
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
