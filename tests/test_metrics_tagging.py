"""Tagging metrics against scikit-learn and brute-force threshold counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from jetfm.data.classes import CLASS_INDEX, CLASSES
from jetfm.metrics.tagging import (
    JETCLASS_WORKING_POINTS,
    accuracy,
    background_efficiency_at,
    binary_summary,
    jetclass_rejections,
    max_sic,
    multiclass_auc,
    rejection_at,
    roc_auc,
    roc_curve,
    sic_curve,
)


def _binary(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(labels * 1.2, 1.0)
    return labels, np.round(scores, 1) if ties else scores


def _brute_force(labels: np.ndarray, scores: np.ndarray) -> list[tuple[float, float]]:
    """(eps_S, eps_B) of every cut score >= t, counted jet by jet."""
    n_s, n_b = (labels == 1).sum(), (labels == 0).sum()
    points = []
    for t in np.unique(scores):
        passed = scores >= t
        points.append(((passed & (labels == 1)).sum() / n_s, (passed & (labels == 0)).sum() / n_b))
    return points


@pytest.mark.parametrize("ties", [False, True])
def test_roc_and_auc_equal_sklearn(ties: bool) -> None:
    labels, scores = _binary(3000, 1, ties)
    eps_b, eps_s, thresholds = roc_curve(labels, scores)
    fpr, tpr, sk_thresholds = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_array_equal(eps_b, fpr)
    np.testing.assert_array_equal(eps_s, tpr)
    np.testing.assert_array_equal(thresholds[1:], sk_thresholds[1:])
    assert abs(roc_auc(labels, scores) - roc_auc_score(labels, scores)) < 1e-9


def test_multiclass_auc_equals_sklearn_ovo_macro() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 2000)
    logits = rng.normal(size=(2000, 4)) + 1.5 * np.eye(4)[labels] * rng.uniform(0, 1, (2000, 1))
    probs = softmax(logits, axis=1)
    expected = roc_auc_score(labels, probs, multi_class="ovo", average="macro")
    assert abs(multiclass_auc(labels, probs) - expected) < 1e-9


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("efficiency", [0.3, 0.5, 0.99, 0.995])
def test_rejection_at_achievable_efficiency_equals_brute_force(
    ties: bool, efficiency: float
) -> None:
    labels, scores = _binary(4000, 3, ties)
    points = _brute_force(labels, scores)
    eff_s = [s for s, _ in points]
    # pick the achievable efficiency closest to the target so no interpolation is involved
    target = min(eff_s, key=lambda s: abs(s - efficiency))
    expected_eps_b = min(b for s, b in points if s >= target)
    assert background_efficiency_at(labels, scores, target) == expected_eps_b
    assert rejection_at(labels, scores, target) == 1.0 / expected_eps_b


def test_rejection_interpolates_linearly_between_bracketing_cuts() -> None:
    # Cuts: >= 0.9 keeps (eps_S, eps_B) = (0.5, 0); >= 0.5 keeps (1, 0.5) (a signal-background
    # tie). eps_S = 0.75 is half way: eps_B = 0.25, rejection 4.
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    assert background_efficiency_at(labels, scores, 0.75) == pytest.approx(0.25)
    assert rejection_at(labels, scores, 0.75) == pytest.approx(4.0)
    assert rejection_at(labels, scores, 0.5) == np.inf  # no background passes


def test_max_sic_brute_force_with_background_guard() -> None:
    labels, scores = _binary(3000, 4)
    n_b = (labels == 0).sum()
    best = max(
        (s / np.sqrt(b), s) for s, b in _brute_force(labels, scores) if b * n_b >= 10
    )
    sic, eps_s = max_sic(labels, scores, min_background=10)
    assert sic == pytest.approx(best[0], rel=1e-12)
    assert eps_s == pytest.approx(best[1], rel=1e-12)
    # without the guard a single surviving background jet gives a larger, noise-driven SIC
    assert max_sic(labels, scores, min_background=1)[0] >= sic


def test_accuracy_binary_and_multiclass() -> None:
    assert accuracy(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.6])) == 0.5
    probs = np.array([[0.7, 0.3], [0.1, 0.9], [0.6, 0.4]])
    assert accuracy(np.array([0, 1, 1]), probs) == pytest.approx(2 / 3)


def test_binary_summary_keys_and_values() -> None:
    labels, scores = _binary(2000, 5)
    summary = binary_summary(labels, scores)
    assert summary["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert summary["rejection@0.5"] == rejection_at(labels, scores, 0.5)
    assert {"rejection@0.3", "rejection@0.99", "rejection@0.995", "max_sic"} <= set(summary)


def test_jetclass_rejections_use_ratio_score_and_working_points() -> None:
    rng = np.random.default_rng(6)
    names = ["QCD", "Hbb", "Tbl", "Hqql"]
    labels = np.repeat([CLASS_INDEX[n] for n in names], 800)
    logits = rng.normal(size=(len(labels), len(CLASSES)))
    logits[np.arange(len(labels)), labels] += 1.0
    probs = softmax(logits, axis=1)
    result = jetclass_rejections(labels, probs)
    assert set(result) == {"Hbb", "Tbl", "Hqql"}
    qcd = CLASS_INDEX["QCD"]
    for name, value in result.items():
        x = CLASS_INDEX[name]
        sel = (labels == x) | (labels == qcd)
        score = probs[sel, x] / (probs[sel, x] + probs[sel, qcd])
        truth = (labels[sel] == x).astype(int)
        eff = JETCLASS_WORKING_POINTS[name]
        # slow reference: tightest cut keeping >= eff of the signal, interpolated linearly
        points = sorted(_brute_force(truth, score))
        above = min((p for p in points if p[0] >= eff), key=lambda p: (p[0], p[1]))
        below = max((p for p in points if p[0] < eff), key=lambda p: (p[0], p[1]), default=(0, 0))
        frac = (eff - below[0]) / (above[0] - below[0])
        expected = below[1] + frac * (above[1] - below[1])
        assert value == pytest.approx(1.0 / expected, rel=1e-12)
    assert JETCLASS_WORKING_POINTS["Hqql"] == 0.99 and JETCLASS_WORKING_POINTS["Tbl"] == 0.995


def test_max_sic_is_nan_without_enough_background() -> None:
    labels = np.array([1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.4, 0.1])
    assert all(np.isnan(max_sic(labels, scores, min_background=10)))
    assert max_sic(labels, scores, min_background=1)[0] == pytest.approx(1 / np.sqrt(0.5))


@pytest.mark.parametrize(("min_background", "n_backgrounds"),
                         [(10, range(2400, 2521)), (25, range(3000, 3011))])
def test_sic_guard_keeps_a_cut_passing_exactly_the_minimum(min_background, n_backgrounds) -> None:
    """Issue 11, item 12: a cut passing exactly ``min_background`` background jets is kept for
    every background count (the float guard eps_B * n_B >= min dropped it for n_B = 2424, 2429,
    ... with min 10 and 3007 with min 25, where (10 / n) * n < 10 in floating point)."""
    for n_background in n_backgrounds:
        labels = np.r_[np.ones(100, dtype=int), np.zeros(n_background, dtype=int)]
        # signal: 50 at 3 (no background passes), 50 at 1; background: min at 2, rest at 0
        scores = np.r_[np.full(50, 3.0), np.full(50, 1.0), np.full(min_background, 2.0),
                       np.zeros(n_background - min_background)]
        eps_s, sic = sic_curve(labels, scores, min_background=min_background)
        eps_b = min_background / n_background
        np.testing.assert_allclose(eps_s, [0.5, 1.0, 1.0], err_msg=str(n_background))
        np.testing.assert_allclose(sic, [0.5 / np.sqrt(eps_b), 1 / np.sqrt(eps_b), 1.0])
        assert max_sic(labels, scores, min_background) == (pytest.approx(1 / np.sqrt(eps_b)), 1.0)
