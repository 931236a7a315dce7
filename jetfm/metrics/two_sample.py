"""Classifier two-sample test: can a small classifier tell generated from reference jets?

A scikit-learn ``HistGradientBoostingClassifier`` is trained on a stratified, seeded split of
the two feature sets (n_jets, n_features) and scored on the held-out part. The result is the
held-out ROC AUC (generated = 1): 0.5 means indistinguishable, 1 means fully separable. The
uncertainty is the standard deviation of the AUC over seeded bootstrap resamplings of the
held-out jets (the classifier is not retrained). The classifier's OpenMP threads are limited
to ``n_threads`` (default 1: fast and robust for the small samples of tests and scans on
shared machines; raise it for samples of 10^5 jets and more).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from jetfm.metrics.generation import Estimate, check_n_bootstrap
from jetfm.metrics.inputs import paired_features
from jetfm.metrics.tagging import roc_auc

# Training jets (both samples) from which the classifier keeps scikit-learn's default leaf size.
FULL_LEAF_TRAINING = 200


def classifier_two_sample_auc(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    test_fraction: float = 0.5,
    n_bootstrap: int = 100,
    max_iter: int = 100,
    n_threads: int = 1,
    seed: int = 0,
) -> Estimate:
    """Held-out AUC of a classifier separating ``generated`` (1) from ``reference`` (0).

    Both inputs are finite (n_jets >= 2, n_features) sets with equal feature counts, checked
    by :func:`jetfm.metrics.inputs.paired_features`. Same seed -> identical result. Raises
    ``ValueError`` for ``n_bootstrap`` < 2; the error is NaN, with a note saying why, when
    fewer than two resamplings of the held-out jets hold both classes. The classifier is
    scikit-learn's ``HistGradientBoostingClassifier`` with its default 20 jets per leaf, fewer
    (a tenth of the training jets, at least 2) below :data:`FULL_LEAF_TRAINING` training jets
    so that small samples can be split at all; when it still makes no split (every held-out
    score equal), the AUC is NaN with a note, not 0.5: no split is not "indistinguishable".
    """
    check_n_bootstrap(n_bootstrap)
    x_ref, x_gen = paired_features(reference, generated, min_rows=2)
    features = np.concatenate([x_ref, x_gen])
    labels = np.r_[np.zeros(len(x_ref), dtype=np.int64), np.ones(len(x_gen), dtype=np.int64)]
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    leaf = 20 if len(y_train) >= FULL_LEAF_TRAINING else max(2, len(y_train) // 10)
    classifier = HistGradientBoostingClassifier(
        max_iter=max_iter, early_stopping=False, random_state=seed, min_samples_leaf=leaf
    )
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        classifier.fit(x_train, y_train)
        scores = classifier.predict_proba(x_test)[:, 1]
    if np.ptp(scores) == 0:
        return Estimate(float("nan"), float("nan"), (
            f"undefined: the classifier made no split on {len(y_train)} training jets "
            f"({leaf} per leaf at least)"))
    auc = roc_auc(y_test, scores)
    rng = np.random.default_rng(seed)
    replicas = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(y_test), len(y_test))
        if y_test[idx].min() != y_test[idx].max():
            replicas.append(roc_auc(y_test[idx], scores[idx]))
    if len(replicas) < 2:
        return Estimate(auc, float("nan"), (
            f"error undefined: {len(replicas)} of {n_bootstrap} bootstrap resamplings of the "
            f"{len(y_test)} held-out jets hold both classes"))
    return Estimate(auc, float(np.std(replicas, ddof=1)))
