"""Metric-vs-dataset-size plots (log-log with the power-law fit) and training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def plot_sampler_steps(
    steps: Sequence[int],
    ratios: Mapping[str, Sequence[float]],
    jets_per_second: Sequence[float],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Quality vs the number of ODE-sampler steps: each metric divided by its floor
    (``ratios``: label -> one value per entry of ``steps``; 1 = at the floor, dashed line) on
    the left axis, sampling speed [jets/s] on the right (both log scale), to ``path`` (PNG).
    Used by the generation benchmark's PET steps scan (issue 14: quality vs steps with
    jets/s)."""
    use_style()
    fig, ax = plt.subplots(figsize=(8, 6))
    for label, values in ratios.items():
        ax.plot(steps, values, "o-", label=label)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="floor")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("Midpoint sampler steps")
    ax.set_ylabel("W1 / floor")
    speed = ax.twinx()
    speed.plot(steps, jets_per_second, "s:", color="black", label="jets/s (right)")
    speed.set_yscale("log")
    speed.set_ylabel("Sampling speed [jets/s]")
    if title:
        ax.set_title(title, fontsize="small")
    handles = ax.get_legend_handles_labels()
    extra = speed.get_legend_handles_labels()
    ax.set_xticks(list(steps), [str(n) for n in steps])
    ax.minorticks_off()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize="small", ncol=3,
              loc="upper center", bbox_to_anchor=(0.5, -0.2), borderaxespad=0)
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
