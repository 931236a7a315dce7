"""ROC curves in the physics convention: background rejection 1/eps_B vs signal efficiency."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from jetfm.metrics.tagging import roc_auc, roc_curve
from jetfm.plots.style import save_figure, use_style


def plot_roc(
    taggers: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    signal: str = "signal",
    background: str = "background",
) -> Path:
    """Write 1/eps_B (log) vs eps_S for each tagger {name: (labels, scores)} to ``path`` (PNG).

    Binary labels: 1 = signal, 0 = background. Points with eps_B = 0 (infinite rejection) are
    not drawable and are left out of the curve; the legend gives each tagger's AUC.
    """
    use_style()
    fig, ax = plt.subplots(figsize=(8, 7))
    for name, (labels, scores) in taggers.items():
        eps_b, eps_s, _ = roc_curve(labels, scores)
        keep = eps_b > 0
        ax.plot(eps_s[keep], 1.0 / eps_b[keep], label=f"{name} (AUC {roc_auc(labels, scores):.4f})")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel(rf"Signal efficiency $\varepsilon_S$ ({signal})")
    ax.set_ylabel(rf"Background rejection $1/\varepsilon_B$ ({background})")
    ax.legend(fontsize="small")
    return save_figure(fig, path)
