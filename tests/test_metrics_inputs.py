"""Issue 11, item 4: every metric entry point refuses the same bad inputs with the same
ValueError (what and how many), never a number; one shared validator (jetfm.metrics.inputs)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pytest

from jetfm.data.classes import CLASS_INDEX
from jetfm.metrics.distances import fpd, kpd
from jetfm.metrics.evaluate import evaluate_batches, evaluate_tagging
from jetfm.metrics.generation import kl_divergence, wasserstein1
from jetfm.metrics.tagging import (
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
from jetfm.metrics.two_sample import classifier_two_sample_auc

# ----------------------------------------------------------------------------- binary scores
BINARY: dict[str, Callable] = {
    "roc_curve": roc_curve,
    "roc_auc": roc_auc,
    "accuracy": accuracy,
    "background_efficiency_at": partial(background_efficiency_at, signal_efficiency=0.5),
    "rejection_at": partial(rejection_at, signal_efficiency=0.5),
    "sic_curve": partial(sic_curve, min_background=1),
    "max_sic": partial(max_sic, min_background=1),
    "binary_summary": binary_summary,
    "evaluate_tagging": evaluate_tagging,
}
LABELS = np.array([0, 1, 0, 1, 1, 0])
SCORES = np.array([0.1, 0.8, 0.3, 0.6, 0.9, 0.2])
BAD_BINARY = {  # (labels, scores, message)
    "NaN score": (LABELS, np.r_[SCORES[:5], np.nan], r"scores: 1 of 6 are not finite"),
    "inf scores": (LABELS, np.r_[np.inf, -np.inf, SCORES[2:]], r"scores: 2 of 6 are not finite"),
    "scores not 1-D": (LABELS, SCORES.reshape(6, 1, 1), r"scores must have shape \(n,\)"),
    "lengths differ": (LABELS[:5], SCORES, r"5 labels for 6 scores"),
    "no background": (np.ones(6, int), SCORES, r"got 6 signal and 0 background"),
    "no signal": (np.zeros(6, int), SCORES, r"got 0 signal and 6 background"),
    "empty": (np.array([], int), np.array([]), r"scores is empty \(0 jets\)"),
    "label 2": (np.r_[LABELS[:5], 2], SCORES, r"0 \(background\) or 1 \(signal\): 1 of 6"),
    "NaN label": (np.r_[LABELS[:5], np.nan], SCORES, r"labels: 1 of 6 are not integers"),
    "text scores": (LABELS, np.array(list("abcdef")), r"scores must be numeric"),
}


@pytest.mark.parametrize("case", BAD_BINARY)
@pytest.mark.parametrize("entry", BINARY)
def test_binary_entry_points_refuse_bad_inputs(entry: str, case: str) -> None:
    labels, scores, message = BAD_BINARY[case]
    with pytest.raises(ValueError, match=message):
        BINARY[entry](labels, scores)


@pytest.mark.parametrize("entry", BINARY)
def test_binary_entry_points_accept_good_inputs(entry: str) -> None:
    """The same good inputs pass every entry point (lists as well as arrays)."""
    BINARY[entry](LABELS.tolist(), SCORES.tolist())


# ----------------------------------------------------------------------------- class probabilities
MULTICLASS: dict[str, Callable] = {
    "multiclass_auc": multiclass_auc,
    "accuracy": accuracy,
    "jetclass_rejections": jetclass_rejections,
}
QCD, HBB, TBQQ = CLASS_INDEX["QCD"], CLASS_INDEX["Hbb"], CLASS_INDEX["Tbqq"]
CLASS_LABELS = np.array([QCD, HBB, TBQQ, QCD, HBB, TBQQ])
PROBS = np.random.default_rng(0).dirichlet(np.ones(10), 6)
BAD_MULTICLASS = {
    "NaN probability": (CLASS_LABELS, np.where(np.eye(6, 10) > 0, np.nan, PROBS),
                        r"6 of 6 jets have non-finite probabilities"),
    "inf probability": (CLASS_LABELS, np.r_[PROBS[:5], np.full((1, 10), np.inf)],
                        r"1 of 6 jets have non-finite probabilities"),
    "probs 3-D": (CLASS_LABELS, PROBS[:, :, None], r"must have shape \(n,"),
    "lengths differ": (CLASS_LABELS[:4], PROBS, r"4 labels for 6 rows of"),
    "one class": (np.full(6, QCD), PROBS, r"at least two classes, got only class \[0\]"),
    "label beyond columns": (np.r_[CLASS_LABELS[:5], 10], PROBS,
                             r"labels: 1 of 6 do not index the 10 columns"),
    "negative label": (np.r_[CLASS_LABELS[:5], -1], PROBS, r"labels: 1 of 6 do not index"),
    "empty": (np.array([], int), np.zeros((0, 10)), r"is empty \(0 jets\)"),
    "fractional label": (np.r_[CLASS_LABELS[:5], 0.5], PROBS, r"labels: 1 of 6 are not integers"),
}


@pytest.mark.parametrize("case", BAD_MULTICLASS)
@pytest.mark.parametrize("entry", MULTICLASS)
def test_multiclass_entry_points_refuse_bad_inputs(entry: str, case: str) -> None:
    labels, probs, message = BAD_MULTICLASS[case]
    with pytest.raises(ValueError, match=message):
        MULTICLASS[entry](labels, probs)


def test_multiclass_good_inputs_and_class_specific_checks() -> None:
    for entry in MULTICLASS.values():
        entry(CLASS_LABELS, PROBS)
    with pytest.raises(ValueError, match=r"at least 10 class columns"):
        jetclass_rejections(CLASS_LABELS, PROBS[:, :9])
    with pytest.raises(ValueError, match="no QCD"):
        jetclass_rejections(np.r_[CLASS_LABELS[1:3], CLASS_LABELS[4:6]], PROBS[:4])


# ----------------------------------------------------------------------------- generation
SAMPLES: dict[str, Callable] = {"kl_divergence": kl_divergence, "wasserstein1": wasserstein1}
SAMPLE = np.linspace(0.0, 1.0, 8)
BAD_SAMPLES = {  # (generated, reference, message)
    "NaN generated": (np.r_[SAMPLE[:6], np.nan, np.nan], SAMPLE,
                      r"generated sample: 2 of 8 values are not finite"),
    "inf reference": (SAMPLE, np.r_[SAMPLE[:7], np.inf],
                      r"reference sample: 1 of 8 values are not finite"),
    "empty generated": (np.array([]), SAMPLE, r"generated sample is empty \(0 values\)"),
    "empty reference": (SAMPLE, np.array([]), r"reference sample is empty \(0 values\)"),
    "2-D generated": (SAMPLE.reshape(4, 2), SAMPLE, r"generated must have shape \(n,\)"),
}


@pytest.mark.parametrize("case", BAD_SAMPLES)
@pytest.mark.parametrize("entry", SAMPLES)
def test_sample_metrics_refuse_bad_inputs(entry: str, case: str) -> None:
    generated, reference, message = BAD_SAMPLES[case]
    with pytest.raises(ValueError, match=message):
        SAMPLES[entry](generated, reference)


FEATURES: dict[str, Callable] = {  # called as f(reference, generated)
    "fpd": partial(fpd, min_samples=2, max_samples=6, n_batches=2, n_points=2),
    "kpd": partial(kpd, n_batches=2, batch_size=4),
    "classifier_two_sample_auc": partial(classifier_two_sample_auc, n_bootstrap=2, max_iter=3),
}
X = np.random.default_rng(1).normal(size=(12, 3))
BAD_FEATURES = {  # (reference, generated, message)
    "NaN generated": (X, np.where(np.arange(36).reshape(12, 3) == 4, np.nan, X),
                      r"generated features: 1 of 12 jets have non-finite values"),
    "inf reference": (np.r_[X[:10], np.full((2, 3), np.inf)], X,
                      r"reference features: 2 of 12 jets have non-finite values"),
    "1-D": (X, X[:, 0], r"generated must have shape \(n_jets, n_features\)"),
    "no columns": (X[:, :0], X, r"reference features have no columns"),
    "feature counts": (X, X[:, :2], r"feature counts differ: reference 3, generated 2"),
    "empty": (X, X[:0], r"generated features is empty \(0 jets\)"),
    "one jet": (X[:1], X, r"reference features has 1 jets, needs at least 2"),
}


@pytest.mark.parametrize("case", BAD_FEATURES)
@pytest.mark.parametrize("entry", FEATURES)
def test_feature_metrics_refuse_bad_inputs(entry: str, case: str) -> None:
    reference, generated, message = BAD_FEATURES[case]
    with pytest.raises(ValueError, match=message):
        FEATURES[entry](reference, generated)


def test_evaluate_batches_refuses_samples_without_two_jets(tmp_path) -> None:
    from io_jets import random_jets

    jets = random_jets(6, seed=2, n_min=3, n_max=6)
    with pytest.raises(ValueError, match=r"generated sample \(<memory>\) is empty \(0 jets\)"):
        evaluate_batches(jets, jets[:0], tmp_path)
    with pytest.raises(ValueError, match=r"reference sample \(<memory>\) has 1 jets"):
        evaluate_batches(jets[:1], jets, tmp_path)
    with pytest.raises(ValueError, match=r"reference sample \(<memory>\) in no jets is empty"):
        evaluate_batches(jets, jets, tmp_path, frame=lambda b: b[:0], frame_name="no jets")
    assert not list(tmp_path.iterdir())  # refused before anything is written
