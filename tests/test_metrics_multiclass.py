"""Multi-class tagging summary (:func:`jetfm.metrics.tagging.multiclass_summary`) against
scikit-learn, hand-computed cases and its input checks; the multi-class ROC plot."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from jetfm.metrics.tagging import (
    multiclass_summary,
    pair_score,
    paired_difference,
    rejection_at,
)
from jetfm.plots.roc import plot_multiclass_roc

CLASSES = ["QCD", "Tbqq", "Wqq", "Zqq", "Hbb"]


def _toy(n_per_class: int = 400, strength: float = 1.5, seed: int = 0
         ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    logits = rng.normal(size=(len(labels), len(CLASSES)))
    logits[np.arange(len(labels)), labels] += strength
    return labels, softmax(logits, axis=1)


def test_summary_values_equal_sklearn_and_the_ratio_score_definitions() -> None:
    labels, probs = _toy()
    s = multiclass_summary(labels, probs, CLASSES, n_bootstrap=5, seed=1)
    assert s["accuracy"].value == pytest.approx(np.mean(probs.argmax(1) == labels), abs=1e-12)
    expected = roc_auc_score(labels, probs, multi_class="ovo", average="macro")
    assert s["macro_auc"].value == pytest.approx(expected, abs=1e-9)
    for x, name in enumerate(CLASSES[1:], start=1):
        sel = (labels == x) | (labels == 0)
        score = probs[sel, x] / (probs[sel, x] + probs[sel, 0])
        assert s[f"rejection@0.5_{name}"].value == rejection_at(labels[sel] == x, score, 0.5)
    for a, b, key in ((2, 3, "auc_Wqq_vs_Zqq"), (4, 3, "auc_Hbb_vs_Zqq")):
        sel = (labels == a) | (labels == b)
        score = probs[sel, a] / (probs[sel, a] + probs[sel, b])
        assert s[key].value == pytest.approx(roc_auc_score(labels[sel] == a, score), abs=1e-12)
    assert set(s) == {"accuracy", "macro_auc", "auc_Wqq_vs_Zqq", "auc_Hbb_vs_Zqq",
                      *(f"rejection@0.5_{c}" for c in CLASSES[1:])}


def test_bootstrap_error_is_the_spread_of_resampled_test_sets() -> None:
    labels, probs = _toy(n_per_class=300)
    s = multiclass_summary(labels, probs, CLASSES, n_bootstrap=60, seed=3)
    # accuracy of n jets: binomial standard deviation sqrt(p (1 - p) / n) (stratified: a bit
    # less); the bootstrap must find that size, not 0 and not the spread of one jet
    p = s["accuracy"].value
    binomial = np.sqrt(p * (1 - p) / len(labels))
    assert 0.5 * binomial < s["accuracy"].error < 1.5 * binomial
    # more test jets -> smaller errors (sqrt(n) scaling, factor 4 in n)
    big = multiclass_summary(*_toy(n_per_class=1200), CLASSES, n_bootstrap=60, seed=3)
    assert big["macro_auc"].error < 0.75 * s["macro_auc"].error
    again = multiclass_summary(labels, probs, CLASSES, n_bootstrap=60, seed=3)
    assert again["macro_auc"].error == s["macro_auc"].error  # seeded
    # rejection R = 1/eps_B: error R^2 sigma(eps_B), and eps_B ~ k / n_B is binomial
    for name in CLASSES[1:]:
        r = s[f"rejection@0.5_{name}"]
        eps_b, n_b = 1 / r.value, 300
        binomial = r.value**2 * np.sqrt(eps_b * (1 - eps_b) / n_b)
        assert 0.5 * binomial < r.error < 2 * binomial, (name, r, binomial)


def test_rejection_error_stays_finite_when_some_resamples_pass_no_background() -> None:
    # 100 QCD jets of which exactly one scores above half the signal: eps_B = 1 %, and a
    # resample misses that jet with probability (1 - 1/100)^100 ~ 37 %
    rng = np.random.default_rng(4)
    qcd = np.full(100, 0.1)
    qcd[7] = 0.95
    signal = rng.uniform(0.2, 1.0, 100)
    probs = np.column_stack([1 - np.r_[qcd, signal], np.r_[qcd, signal]])
    labels = np.repeat([0, 1], 100)
    r = multiclass_summary(labels, probs, ["QCD", "Tbqq"], n_bootstrap=200, seed=1)[
        "rejection@0.5_Tbqq"]
    assert r.value == pytest.approx(100.0)
    # sigma(eps_B) of 1 in 100 is sqrt(0.01 * 0.99 / 100) ~ 0.01: error ~ 100^2 * 0.01 = 100
    assert 60 < r.error < 140 and r.note == ""


def test_perfect_and_random_taggers() -> None:
    labels = np.repeat(np.arange(3), 200)
    perfect = np.eye(3)[labels] * 0.97 + 0.01
    s = multiclass_summary(labels, perfect, ["QCD", "Wqq", "Zqq"], n_bootstrap=4)
    assert s["accuracy"].value == 1.0 and s["macro_auc"].value == 1.0
    assert s["auc_Wqq_vs_Zqq"].value == 1.0
    assert s["rejection@0.5_Wqq"].value == np.inf  # no QCD jet passes: documented inf
    assert np.isnan(s["rejection@0.5_Wqq"].error) and "lower bound" in s["rejection@0.5_Wqq"].note
    rng = np.random.default_rng(5)
    shuffled = perfect[rng.permutation(len(labels))]
    r = multiclass_summary(labels, shuffled, ["QCD", "Wqq", "Zqq"], n_bootstrap=20)
    assert abs(r["macro_auc"].value - 0.5) < 3 * r["macro_auc"].error + 0.02
    assert abs(r["auc_Wqq_vs_Zqq"].value - 0.5) < 0.1


def test_pair_score_is_the_two_class_ratio() -> None:
    probs = np.array([[0.2, 0.6, 0.2], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(pair_score(probs, 1, 0), [0.75, 0.5])


@pytest.mark.parametrize(("change", "message"), [
    (lambda l, p: (l, p * 1.1), "do not sum to 1"),
    (lambda l, p: (l, np.log(p)), "negative"),
    (lambda l, p: (l, np.where(np.arange(len(p))[:, None] == 3, np.nan, p)), "non-finite"),
    (lambda l, p: (l[:-1], p), "lengths differ"),
    (lambda l, p: (np.where(l == 2, 1, l), p), "no test jets of class(es) ['Wqq']"),
    (lambda l, p: (l, p[:, :4] / p[:, :4].sum(1, keepdims=True)), "columns for the 5 classes"),
])
def test_bad_inputs_raise_clear_errors(change, message) -> None:
    labels, probs = _toy(n_per_class=20)
    with pytest.raises(ValueError, match=re.escape(message)):
        multiclass_summary(*change(labels, probs), CLASSES, n_bootstrap=2)


def test_bad_class_lists_raise_clear_errors() -> None:
    labels, probs = _toy(n_per_class=20)
    with pytest.raises(ValueError, match="unknown jet class 'Top'"):
        multiclass_summary(labels, probs, ["QCD", "Top", "Wqq", "Zqq", "Hbb"])
    with pytest.raises(ValueError, match="background class 'QCD' is not in"):
        multiclass_summary(labels, probs, ["Hcc", "Tbqq", "Wqq", "Zqq", "Hbb"])
    with pytest.raises(ValueError, match="n_bootstrap"):
        multiclass_summary(labels, probs, CLASSES, n_bootstrap=1)


def test_multiclass_roc_plot_has_one_panel_per_signal_class(tmp_path) -> None:
    import matplotlib.pyplot as plt

    labels, probs = _toy(n_per_class=100)
    _, weak = _toy(n_per_class=100, strength=0.5, seed=1)
    seen = {}
    original = plt.subplots

    def spy(*args, **kwargs):
        fig, axes = original(*args, **kwargs)
        seen["axes"] = axes
        return fig, axes

    plt.subplots = spy
    try:
        path = plot_multiclass_roc({"strong": (labels, probs), "weak": (labels, weak)},
                                   CLASSES, tmp_path / "roc.png")
    finally:
        plt.subplots = original
    assert path.stat().st_size > 0
    visible = [ax for ax in seen["axes"].flat if ax.get_visible()]
    assert [ax.get_title().split(" vs")[0] for ax in visible] == CLASSES[1:]
    assert all(len(ax.get_lines()) == 2 for ax in visible)


def test_paired_difference_is_the_difference_with_a_paired_error() -> None:
    labels, probs_a = _toy(seed=3)
    rng = np.random.default_rng(4)
    # B: A's probabilities slightly perturbed, so the two taggers' errors are correlated
    probs_b = softmax(np.log(probs_a) + rng.normal(0, 0.3, probs_a.shape), axis=1)
    same = paired_difference(labels, probs_a, probs_a, CLASSES, n_bootstrap=20, seed=2)
    assert all(e.value == 0.0 and e.error == 0.0 for e in same.values())
    diff = paired_difference(labels, probs_a, probs_b, CLASSES, n_bootstrap=50, seed=2)
    a = multiclass_summary(labels, probs_a, CLASSES, n_bootstrap=50, seed=2)
    b = multiclass_summary(labels, probs_b, CLASSES, n_bootstrap=50, seed=2)
    assert set(diff) == {k for k in a if not k.startswith("rejection@")}
    for key in ("accuracy", "macro_auc", "auc_Wqq_vs_Zqq"):
        assert diff[key].value == pytest.approx(a[key].value - b[key].value, abs=1e-12)
        # shared test jets: the paired error is well below the errors added in quadrature
        assert diff[key].error < 0.7 * np.hypot(a[key].error, b[key].error)
    with pytest.raises(ValueError):
        paired_difference(labels, probs_a, probs_b[:-1], CLASSES)
