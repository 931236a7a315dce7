"""ROC curves in the physics convention: background rejection 1/eps_B vs signal efficiency."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from jetfm.metrics.tagging import check_class_probs, pair_score, roc_auc, roc_curve
from jetfm.plots.style import place_legend, save_figure, use_style


def plot_roc(
    taggers: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    signal: str = "signal",
    background: str = "background",
) -> Path:
    """Write 1/eps_B (log) vs eps_S for each tagger {name: (labels, scores)} to ``path`` (PNG).

    Binary labels: 1 = signal, 0 = background. Points with eps_B = 0 (infinite rejection) are
    not drawable and are left out of the curve; the legend gives each tagger's AUC and covers
    no curve (:func:`jetfm.plots.style.place_legend`).
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
    place_legend(ax, fontsize="small")
    return save_figure(fig, path)


def plot_multiclass_roc(
    taggers: Mapping[str, tuple[np.ndarray, np.ndarray]],
    classes: Sequence[str],
    path: str | Path,
    *,
    background: str = "QCD",
) -> Path:
    """One panel per signal class X of ``classes`` (all but ``background``): the rejection of
    the background 1/eps_B (log) vs eps_S of the score p_X / (p_X + p_bkg) on X and background
    jets (:func:`jetfm.metrics.tagging.pair_score`, the Particle Transformer paper's JetClass
    convention), one curve per tagger {name: (labels (n,) positions in ``classes``, probs
    (n, K))}; written to ``path`` (PNG). Inputs are checked by
    :func:`jetfm.metrics.tagging.check_class_probs`; points with eps_B = 0 are left out."""
    classes = list(classes)
    checked = {name: check_class_probs(labels, probs, classes, background)
               for name, (labels, probs) in taggers.items()}
    bkg = classes.index(background)
    signals = [x for x in range(len(classes)) if x != bkg]
    ncols = math.ceil(math.sqrt(len(signals)))
    nrows = math.ceil(len(signals) / ncols)
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 6 * nrows), squeeze=False,
                             layout="constrained")  # titles clear of the axis labels above
    for ax, x in zip(axes.flat, signals, strict=False):
        for name, (labels, probs) in checked.items():
            sel = (labels == x) | (labels == bkg)
            truth, score = labels[sel] == x, pair_score(probs[sel], x, bkg)
            eps_b, eps_s, _ = roc_curve(truth, score)
            keep = eps_b > 0
            ax.plot(eps_s[keep], 1.0 / eps_b[keep],
                    label=f"{name} (AUC {roc_auc(truth, score):.4f})")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel(rf"$\varepsilon_S$ ({classes[x]})")
        ax.set_ylabel(rf"$1/\varepsilon_B$ ({background})")
        ax.set_title(rf"{classes[x]} vs {background}: $p_X/(p_X + p_{{{background}}})$",
                     fontsize="medium")
    for ax in axes.flat[len(signals):]:
        ax.set_visible(False)
    for ax in axes.flat[:len(signals)]:  # after the last panel: its layout is final
        place_legend(ax, fontsize="x-small")
    return save_figure(fig, path)
