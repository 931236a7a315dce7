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
* Multi-class summary of a tagger with its own class list (:func:`multiclass_summary`):
  ``labels`` are positions 0..K-1 in that list and ``probs`` (n, K) its softmax outputs;
  accuracy, macro one-vs-one AUC, the rejection of the background (QCD) at eps_S = 50 % for
  every other class with p_X / (p_X + p_QCD), and the AUC of the pairs of
  :data:`CLASS_PAIRS` (p_A / (p_A + p_B) on A and B jets), each with a bootstrap error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations

import numpy as np

from jetfm.data.classes import CLASS_INDEX, JETCLASS_CLASSES, class_index
from jetfm.metrics.generation import Estimate, check_n_bootstrap
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
        result[name] = rejection_at(labels[sel] == x, pair_score(probs[sel], x, qcd), eff)
    return result


def pair_score(probs: np.ndarray, signal: int, background: int) -> np.ndarray:
    """p_S / (p_S + p_B) of columns ``signal`` and ``background`` of ``probs`` (n, n_classes),
    (n,): the two-class score of the Particle Transformer paper's JetClass table
    (arXiv:2202.03772, Table 2); 0.5 where both probabilities are 0."""
    p_s, p_b = probs[:, signal], probs[:, background]
    total = p_s + p_b
    return np.divide(p_s, total, out=np.full_like(p_s, 0.5), where=total > 0)


# Class pairs whose separation :func:`multiclass_summary` quotes as its own AUC when both are
# in the class list: the two hardest pairs of resonances of issue 12's 5-class benchmark
# (W vs Z: mass difference ~ 11 GeV; H -> bb vs Z -> qq: Z -> bb is 15 % of Z -> qq).
CLASS_PAIRS: tuple[tuple[str, str], ...] = (("Wqq", "Zqq"), ("Hbb", "Zqq"))
# Largest |sum_k p_k - 1| of a row of probabilities: float32 softmax sums to within ~1e-6.
PROB_SUM_TOLERANCE: float = 1e-4


def check_class_probs(
    labels: np.ndarray, probs: np.ndarray, classes: Sequence[str], background: str = "QCD"
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probs) checked for :func:`multiclass_summary`; ``ValueError`` for: a name not
    in :data:`jetfm.data.classes.CLASSES` or listed twice, ``background`` not in ``classes``,
    ``probs`` not (n, len(classes)), labels of another length or outside 0..K-1, NaN or
    infinite probabilities, negative ones, rows not summing to 1 (within
    :data:`PROB_SUM_TOLERANCE`), and a class of ``classes`` without test jets."""
    classes = list(classes)
    for name in classes:
        try:
            class_index(name)
        except KeyError as err:
            raise ValueError(str(err.args[0])) from None
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes {classes}: a class is listed twice")
    if background not in classes:
        raise ValueError(f"background class {background!r} is not in the classes {classes}")
    shape = np.shape(probs)
    if len(shape) == 2 and shape[1] != len(classes):
        raise ValueError(f"probs have {shape[1]} columns for the {len(classes)} classes "
                         f"{classes}")
    labels, probs = multiclass_inputs(labels, probs)
    n_negative = int((probs < 0).any(axis=1).sum())
    if n_negative:
        raise ValueError(f"probs: {n_negative} of {len(probs)} jets have negative "
                         "probabilities: softmax outputs are expected, not logits")
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > PROB_SUM_TOLERANCE
    if off.any():
        raise ValueError(f"probs: {int(off.sum())} of {len(probs)} rows do not sum to 1 "
                         f"(within {PROB_SUM_TOLERANCE:g}; e.g. {sums[off][0]:.6g}): softmax "
                         "outputs over the class list are expected")
    counts = np.bincount(labels, minlength=len(classes))
    missing = [name for name, n in zip(classes, counts, strict=True) if n == 0]
    if missing:
        raise ValueError(f"no test jets of class(es) {missing}; the test labels hold "
                         f"{ {c: int(n) for c, n in zip(classes, counts, strict=True) if n} }")
    return labels, probs


def _summary_values(labels: np.ndarray, probs: np.ndarray, classes: list[str], background: int,
                    signal_efficiency: float) -> dict[str, float]:
    """The numbers of :func:`multiclass_summary` without errors (inputs already checked)."""
    values = {"accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
              "macro_auc": multiclass_auc(labels, probs)}
    for x, name in enumerate(classes):
        if x == background:
            continue
        sel = (labels == x) | (labels == background)
        values[f"rejection@{signal_efficiency:g}_{name}"] = rejection_at(
            labels[sel] == x, pair_score(probs[sel], x, background), signal_efficiency)
    for a, b in CLASS_PAIRS:
        if a in classes and b in classes:
            ia, ib = classes.index(a), classes.index(b)
            sel = (labels == ia) | (labels == ib)
            values[f"auc_{a}_vs_{b}"] = roc_auc(labels[sel] == ia, pair_score(probs[sel], ia, ib))
    return values


def stratified_resamples(labels: np.ndarray, n_classes: int, n_bootstrap: int, seed: int
                         ) -> Iterator[np.ndarray]:
    """``n_bootstrap`` index arrays resampling the jets with replacement within each class
    (each replica keeps every class's count), seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(labels == k) for k in range(n_classes)]
    for _ in range(n_bootstrap):
        yield np.concatenate([rng.choice(m, len(m)) for m in members])


def multiclass_summary(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    background: str = "QCD",
    signal_efficiency: float = 0.5,
    n_bootstrap: int = 100,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Every number of a multi-class tagger on its test jets, each with a bootstrap error.

    ``labels`` (n,) positions 0..K-1 in ``classes`` (K names of
    :data:`jetfm.data.classes.CLASSES`, e.g. ``["QCD", "Tbqq", "Wqq", "Zqq", "Hbb"]``);
    ``probs`` (n, K) softmax outputs (rows sum to 1). Keys:

    * ``accuracy``: fraction with argmax = label;
    * ``macro_auc``: macro one-vs-one AUC (Hand & Till; :func:`multiclass_auc`,
      = scikit-learn's ``roc_auc_score(multi_class="ovo", average="macro")``);
    * ``rejection@{eff}_{X}`` for every class X but ``background``: 1/eps_B of the background
      at eps_S = ``signal_efficiency`` with the score p_X / (p_X + p_bkg) on X and background
      jets only (the Particle Transformer paper's JetClass table, arXiv:2202.03772, Table 2;
      interpolation as :func:`rejection_at`); ``inf`` when no background jet passes;
    * ``auc_{A}_vs_{B}`` for the pairs of :data:`CLASS_PAIRS` in ``classes``
      (``auc_Wqq_vs_Zqq``, ``auc_Hbb_vs_Zqq``): AUC of p_A / (p_A + p_B) on A and B jets.

    Errors: the standard deviation of the numbers over ``n_bootstrap`` (>= 2) resamples of the
    test jets, drawn with replacement **within each class** (every replica keeps each class's
    count, so every number is defined in every replica), seeded by ``seed``. A rejection's
    error is propagated from the spread of eps_B (delta method, sigma_R = R^2 sigma_eps_B),
    which stays finite when a replica passes no background jet (1/eps_B infinite there); an
    infinite rejection has error NaN, and its :class:`~jetfm.metrics.generation.Estimate`'s
    ``note`` says that only a lower bound is known.
    Raises ``ValueError`` for bad inputs (:func:`check_class_probs`).
    """
    if not 0.0 < signal_efficiency <= 1.0:
        raise ValueError(f"signal efficiency must be in (0, 1], got {signal_efficiency}")
    check_n_bootstrap(n_bootstrap)
    classes = list(classes)
    labels, probs = check_class_probs(labels, probs, classes, background)
    bkg = classes.index(background)
    values = _summary_values(labels, probs, classes, bkg, signal_efficiency)
    replicas: dict[str, list[float]] = {key: [] for key in values}
    for idx in stratified_resamples(labels, len(classes), n_bootstrap, seed):
        for key, value in _summary_values(labels[idx], probs[idx], classes, bkg,
                                          signal_efficiency).items():
            replicas[key].append(value)
    summary = {}
    for key, value in values.items():
        spread = np.asarray(replicas[key])
        if np.isinf(value):
            summary[key] = Estimate(value, float("nan"), "no background jet passes the cut: "
                                    "only a lower bound (~ the number of background jets)")
        elif key.startswith("rejection@"):  # spread of eps_B (finite in every replica)
            summary[key] = Estimate(value, float(np.std(1.0 / spread, ddof=1)) * value**2)
        else:
            summary[key] = Estimate(value, float(np.std(spread, ddof=1)))
    return summary


def paired_difference(
    labels: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    classes: Sequence[str],
    *,
    background: str = "QCD",
    signal_efficiency: float = 0.5,
    n_bootstrap: int = 100,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Tagger A minus tagger B on the SAME test jets, for every number of
    :func:`multiclass_summary` but the rejections: the difference of the values, and as error
    the standard deviation of the difference over ``n_bootstrap`` resamples that draw the same
    jets for both taggers (within each class; a paired bootstrap). The two taggers' errors are
    correlated through the shared test jets, so this error is what says whether A beats B,
    not the errors of the two values added in quadrature.

    ``probs_a``, ``probs_b``: (n, K) softmax outputs of the two taggers on jets ``labels``.
    Raises ``ValueError`` for bad inputs (:func:`check_class_probs`) or different shapes.
    """
    check_n_bootstrap(n_bootstrap)
    classes = list(classes)
    labels, probs_a = check_class_probs(labels, probs_a, classes, background)
    labels, probs_b = check_class_probs(labels, probs_b, classes, background)
    bkg = classes.index(background)

    def values(idx: np.ndarray) -> dict[str, float]:
        a = _summary_values(labels[idx], probs_a[idx], classes, bkg, signal_efficiency)
        b = _summary_values(labels[idx], probs_b[idx], classes, bkg, signal_efficiency)
        return {k: a[k] - b[k] for k in a if not k.startswith("rejection@")}

    value = values(np.arange(len(labels)))
    replicas = [values(idx) for idx in stratified_resamples(labels, len(classes), n_bootstrap,
                                                            seed)]
    return {k: Estimate(v, float(np.std([r[k] for r in replicas], ddof=1)))
            for k, v in value.items()}
