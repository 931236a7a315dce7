"""Metric-vs-dataset-size plots (log-log with the power-law fit) and training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from jetfm.metrics.scaling import PowerLawFit
from jetfm.plots.style import place_legend, save_figure, use_style


def plot_scaling(
    sizes: np.ndarray,
    values: np.ndarray,
    path: str | Path,
    *,
    errors: np.ndarray | None = None,
    fit: PowerLawFit | None = None,
    ylabel: str = "metric",
    label: str = "measured",
) -> Path:
    """Write metric vs training-set size D (log-log) with error bars and, if given, the
    power-law fit a D^-gamma and its 1-sigma band to ``path`` (PNG)."""
    use_style()
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.errorbar(sizes, values, yerr=errors, fmt="o", label=label)
    if fit is not None:
        grid = np.geomspace(np.min(sizes), np.max(sizes), 100)
        lower, upper = fit.band(grid)
        line = ax.plot(grid, fit(grid), "--", label=rf"fit $\gamma = {fit.gamma:.3f} \pm "
                       rf"{fit.gamma_err:.3f}$")[0]
        ax.fill_between(grid, lower, upper, color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Training jets $D$")
    ax.set_ylabel(ylabel)
    place_legend(ax, fontsize="small")
    return save_figure(fig, path)


def plot_training_curves(
    log: str | Path | pd.DataFrame,
    path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    x: str = "step",
    logy: bool = False,
) -> Path:
    """Write logged metrics vs ``x`` to ``path`` (PNG).

    ``log`` is a table with one row per logging call (Lightning's ``CSVLogger`` metrics.csv,
    where each row fills only the columns logged at that call); every metric is drawn over the
    rows where it was logged. ``metrics`` defaults to every numeric column except epoch/step.
    """
    table = pd.read_csv(log) if isinstance(log, str | Path) else log
    if x not in table.columns:
        raise KeyError(f"training log has no column {x!r}; columns: {list(table.columns)}")
    if metrics is None:
        metrics = [
            c for c in table.select_dtypes("number").columns if c not in {"epoch", "step", x}
        ]
    missing = [m for m in metrics if m not in table.columns]
    if missing:
        raise KeyError(f"training log lacks {missing}; columns: {list(table.columns)}")
    use_style()
    fig, ax = plt.subplots(figsize=(8, 6))
    for name in metrics:
        logged = table[[x, name]].dropna()
        ax.plot(logged[x], logged[name], marker="." if len(logged) < 50 else None, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("value")
    place_legend(ax, fontsize="small")
    return save_figure(fig, path)
