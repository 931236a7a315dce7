"""Tagging metrics as pure functions of (labels, scores).

Conventions, fixed once for all of jetfm:

* Binary inputs: ``labels`` (n,) with 1 = signal, 0 = background; ``scores`` (n,) real, larger
  means more signal-like. A jet passes a cut if ``score >= threshold``.
* ROC: signal efficiency eps_S and background efficiency eps_B for every distinct threshold,
  from the tightest (no jet passes, (0, 0)) to the loosest (all pass, (1, 1)). Tied scores
  move together, so the AUC equals the Mann-Whitney statistic with ties counted 1/2 (the
  scikit-learn convention).
* Background rejection 1/eps_B at a target eps_S uses **linear interpolation in eps_S between
  the two adjacent ROC points that bracket the target** (the efficiency of a randomised choice
  between the two cuts). If a cut gives exactly the target eps_S, the lowest eps_B among such
  cuts is used, so the number equals a brute-force threshold count. When no background jet
  passes, the rejection is ``inf`` (only a lower bound ~ n_background is known).
* Multi-class AUC: macro average over all class pairs of the one-vs-one AUC (Hand & Till), as
  used in the Particle Transformer paper (arXiv:2202.03772) and scikit-learn's
  ``roc_auc_score(multi_class="ovo")``.
* JetClass per-class rejection: for class X the jets of X (signal) and QCD (background) are
  selected and scored with p_X / (p_X + p_QCD), evaluated at the standard working points of
  :data:`JETCLASS_WORKING_POINTS`. Score columns follow :data:`jetfm.data.classes.CLASSES`.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from jetfm.data.classes import CLASS_INDEX, JETCLASS_CLASSES
from jetfm.metrics.inputs import binary_inputs, multiclass_inputs

STANDARD_EFFICIENCIES: tuple[float, ...] = (0.3, 0.5, 0.99, 0.995)

# Signal efficiency at which each JetClass signal class' rejection against QCD is quoted
# (Particle Transformer paper, Table 2).
JETCLASS_WORKING_POINTS: dict[str, float] = {
    "Hbb": 0.5,
    "Hcc": 0.5,
    "Hgg": 0.5,
    "H4q": 0.5,
    "Hqql": 0.99,
    "Zqq": 0.5,
    "Wqq": 0.5,
    "Tbqq": 0.5,
    "Tbl": 0.995,
}


def _roc_counts(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(n_B passing, n_S passing, thresholds, n_B, n_S) of every cut, as integer counts."""
    signal, scores = binary_inputs(labels, scores)
    order = np.argsort(-scores, kind="stable")
    scores, signal = scores[order], signal[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    n_sig = np.r_[0, np.cumsum(signal)[last_of_tie]]
    n_bkg = np.r_[0, last_of_tie + 1] - n_sig
    thresholds = np.r_[np.inf, scores[last_of_tie]]
    return n_bkg, n_sig, thresholds, int((~signal).sum()), int(signal.sum())


def roc_curve(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eps_B, eps_S, thresholds), each (n_thresholds + 1,), thresholds descending.

    Point k is the efficiency of ``score >= thresholds[k]``; the first point is (0, 0) with
    threshold +inf. Inputs are checked by :func:`jetfm.metrics.inputs.binary_inputs`.
    """
    n_bkg, n_sig, thresholds, total_bkg, total_sig = _roc_counts(labels, scores)
    return n_bkg / total_bkg, n_sig / total_sig, thresholds


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoidal over tie groups = Mann-Whitney U / n_S n_B)."""
    eps_b, eps_s, _ = roc_curve(labels, scores)
    return float(np.trapezoid(eps_s, eps_b))


def accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of correct predictions.

    ``scores`` (n, n_classes): prediction = argmax (inputs as :func:`multiclass_auc`);
    ``scores`` (n,): binary, signal if ``score >= threshold`` (inputs as :func:`roc_curve`).
    """
    if np.ndim(scores) == 2:
        labels, probs = multiclass_inputs(labels, scores, name="scores")
        return float(np.mean(probs.argmax(axis=1) == labels))
    signal, scores = binary_inputs(labels, scores, name="scores")
    return float(np.mean((scores >= threshold) == signal))


def multiclass_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Macro one-vs-one AUC (Hand & Till) over the classes present in ``labels``.

    ``labels`` (n,) int column indices into ``probs`` (n, n_classes). For each pair (i, j),
    the AUC of separating i from j with p_i and of j from i with p_j are averaged, using only
    jets of classes i and j; the result is the mean over pairs. Inputs are checked by
    :func:`jetfm.metrics.inputs.multiclass_inputs` (finite, >= 2 classes present).
    """
    labels, probs = multiclass_inputs(labels, probs)
    pair_aucs = []
    for i, j in combinations(np.unique(labels), 2):
        both = (labels == i) | (labels == j)
        is_i = labels[both] == i
        pair_aucs.append(
            0.5 * (roc_auc(is_i, probs[both, i]) + roc_auc(~is_i, probs[both, j]))
        )
    return float(np.mean(pair_aucs))


def background_efficiency_at(
    labels: np.ndarray, scores: np.ndarray, signal_efficiency: float
) -> float:
    """eps_B at the target eps_S (linear interpolation in eps_S, see module docstring)."""
    if not 0.0 < signal_efficiency <= 1.0:
        raise ValueError(f"signal efficiency must be in (0, 1], got {signal_efficiency}")
    eps_b, eps_s, _ = roc_curve(labels, scores)
    k = int(np.searchsorted(eps_s, signal_efficiency, side="left"))
    if eps_s[k] == signal_efficiency:
        return float(eps_b[k])
    frac = (signal_efficiency - eps_s[k - 1]) / (eps_s[k] - eps_s[k - 1])
    return float(eps_b[k - 1] + frac * (eps_b[k] - eps_b[k - 1]))


def rejection_at(labels: np.ndarray, scores: np.ndarray, signal_efficiency: float) -> float:
    """Background rejection 1/eps_B at the target signal efficiency (``inf`` if eps_B = 0)."""
    eps_b = background_efficiency_at(labels, scores, signal_efficiency)
    return float(np.inf) if eps_b == 0 else 1.0 / eps_b


def sic_curve(
    labels: np.ndarray, scores: np.ndarray, min_background: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Significance improvement SIC = eps_S / sqrt(eps_B) along the ROC.

    Only ROC points passing at least ``min_background`` background jets are kept (the guard:
    with fewer, eps_B has > ~30 % statistical error and SIC is dominated by fluctuations); the
    guard compares integer counts of background jets, never eps_B * n_B in floating point.
    Returns (eps_S, SIC), each (n_points,).
    """
    if int(min_background) != min_background or min_background < 1:
        raise ValueError(f"min_background must be an integer >= 1, got {min_background}")
    n_bkg, n_sig, _, total_bkg, total_sig = _roc_counts(labels, scores)
    keep = n_bkg >= min_background
    eps_s, eps_b = n_sig[keep] / total_sig, n_bkg[keep] / total_bkg
    return eps_s, eps_s / np.sqrt(eps_b)


def max_sic(
    labels: np.ndarray, scores: np.ndarray, min_background: int = 10
) -> tuple[float, float]:
    """(maximum SIC, eps_S where it is reached), with the ``min_background`` guard; NaN, NaN
    when fewer than ``min_background`` background jets exist at all."""
    eps_s, sic = sic_curve(labels, scores, min_background)
    if len(sic) == 0:
        return float("nan"), float("nan")
    best = int(np.argmax(sic))
    return float(sic[best]), float(eps_s[best])


def binary_summary(
    labels: np.ndarray,
    scores: np.ndarray,
    efficiencies: tuple[float, ...] = STANDARD_EFFICIENCIES,
    min_background: int = 10,
) -> dict[str, float]:
    """Accuracy (cut 0.5), AUC, 1/eps_B at each efficiency and max SIC of a binary tagger."""
    summary = {
        "accuracy": accuracy(labels, scores),
        "auc": roc_auc(labels, scores),
    }
    for eff in efficiencies:
        summary[f"rejection@{eff:g}"] = rejection_at(labels, scores, eff)
    summary["max_sic"], summary["max_sic_eps_s"] = max_sic(labels, scores, min_background)
    return summary


def jetclass_rejections(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Rejection of QCD for each JetClass signal class at its working point.

    ``labels`` (n,) jetfm class indices; ``probs`` (n, >= 10) class probabilities whose
    columns follow :data:`jetfm.data.classes.CLASSES` (the first ten: JetClass' order). For
    class X the score is p_X / (p_X + p_QCD) on the jets labelled X or QCD (0.5 where both
    probabilities are 0). Classes absent from ``labels`` are skipped; inputs are checked by
    :func:`jetfm.metrics.inputs.multiclass_inputs` and QCD jets must be present.
    """
    labels, probs = multiclass_inputs(labels, probs, min_columns=len(JETCLASS_CLASSES))
    qcd = CLASS_INDEX["QCD"]
    if not (labels == qcd).any():
        raise ValueError("no QCD jets: JetClass rejections are quoted against QCD")
    result = {}
    for name, eff in JETCLASS_WORKING_POINTS.items():
        x = CLASS_INDEX[name]
        if not (labels == x).any():
            continue
        sel = (labels == x) | (labels == qcd)
        p_x, p_qcd = probs[sel, x], probs[sel, qcd]
        total = p_x + p_qcd
        score = np.divide(p_x, total, out=np.full_like(p_x, 0.5), where=total > 0)
        result[name] = rejection_at(labels[sel] == x, score, eff)
    return result
