"""The one input check of every metric entry point.

Every metric of :mod:`jetfm.metrics` validates its inputs through these functions, so the same
bad input gives the same ``ValueError`` everywhere, naming the argument, what is wrong and how
many entries: tagging (``roc_curve``, ``roc_auc``, ``accuracy``, ``background_efficiency_at``,
``rejection_at``, ``sic_curve``, ``max_sic``, ``binary_summary``, ``multiclass_auc``,
``jetclass_rejections``), generation (``kl_divergence``, ``wasserstein1``, ``fpd``, ``kpd``,
``classifier_two_sample_auc``) and the evaluation functions of :mod:`jetfm.metrics.evaluate`.
A metric never returns a number for inputs it cannot judge:

* shapes: a sample is (n,), a feature set (n_jets, n_features), binary scores (n,), class
  probabilities (n, n_classes); labels (n,) match their scores in length;
* values: scores, probabilities, samples and features must be finite; labels integer-valued;
* sizes: no empty sample; binary inputs hold signal (1) and background (0) jets; multi-class
  inputs jets of at least two classes, each label indexing a probability column.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _array(values: Any, name: str, ndim: int, shape: str) -> np.ndarray:
    """``values`` as a numeric array of ``ndim`` dimensions, else ValueError."""
    try:
        array = np.asarray(values)
    except ValueError as err:  # ragged nested sequences
        raise ValueError(f"{name} must be an array of shape {shape}: {err}") from None
    if array.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape}, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    return array


def _require_size(n: int, name: str, minimum: int, unit: str) -> None:
    """ValueError naming ``name`` if it holds fewer than ``minimum`` (>= 1) ``unit``."""
    if n == 0:
        raise ValueError(f"{name} is empty (0 {unit})")
    if n < minimum:
        raise ValueError(f"{name} has {n} {unit}, needs at least {minimum}")


def finite_sample(values: Any, name: str, *, min_size: int = 1) -> np.ndarray:
    """A 1-D sample (n,) as float64; ValueError if not 1-D, empty or not finite."""
    x = _array(values, name, 1, "(n,)").astype(np.float64)
    _require_size(len(x), f"{name} sample", min_size, "values")
    n_bad = int((~np.isfinite(x)).sum())
    if n_bad:
        raise ValueError(f"{name} sample: {n_bad} of {len(x)} values are not finite (NaN or inf)")
    return x


def finite_features(values: Any, name: str, *, min_rows: int = 1) -> np.ndarray:
    """A feature set (n_jets, n_features >= 1) as float64; ValueError if not 2-D, with fewer
    than ``min_rows`` jets or with non-finite values."""
    x = _array(values, name, 2, "(n_jets, n_features)").astype(np.float64)
    if x.shape[1] == 0:
        raise ValueError(f"{name} features have no columns (shape {x.shape})")
    _require_size(len(x), f"{name} features", min_rows, "jets")
    n_bad = int((~np.isfinite(x).all(axis=1)).sum())
    if n_bad:
        raise ValueError(f"{name} features: {n_bad} of {len(x)} jets have non-finite values")
    return x


def paired_features(
    reference: Any, generated: Any, *, min_rows: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets through :func:`finite_features`, with equal feature counts."""
    x = finite_features(reference, "reference", min_rows=min_rows)
    y = finite_features(generated, "generated", min_rows=min_rows)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"feature counts differ: reference {x.shape[1]}, generated {y.shape[1]}"
        )
    return x, y


def class_labels(labels: Any, n: int, what: str = "scores") -> np.ndarray:
    """Labels (n,) as int64: ValueError if not 1-D, not ``n`` long, or not integer-valued."""
    array = _array(labels, "labels", 1, "(n,)")
    if len(array) != n:
        raise ValueError(f"{len(array)} labels for {n} {what}: lengths differ")
    if array.dtype.kind == "f":
        n_bad = int((~np.isfinite(array) | (array != np.round(array))).sum())
        if n_bad:
            raise ValueError(f"labels: {n_bad} of {n} are not integers")
    return array.astype(np.int64)


def binary_inputs(
    labels: Any, scores: Any, name: str = "scores"
) -> tuple[np.ndarray, np.ndarray]:
    """(signal mask, scores) of binary inputs: ``scores`` (n,) finite, ``labels`` (n,) of 0
    (background) and 1 (signal), both classes present. ``name``: the scores' name in errors."""
    scores = _array(scores, name, 1, "(n,): one score per jet").astype(np.float64)
    _require_size(len(scores), name, 1, "jets")
    labels = class_labels(labels, len(scores), name)
    n_other = int((~np.isin(labels, (0, 1))).sum())
    if n_other:
        raise ValueError(
            f"binary labels must be 0 (background) or 1 (signal): {n_other} of {len(labels)} "
            "are neither"
        )
    n_bad = int((~np.isfinite(scores)).sum())
    if n_bad:
        raise ValueError(f"{name}: {n_bad} of {len(scores)} are not finite (NaN or inf)")
    n_signal = int(labels.sum())
    if n_signal in (0, len(labels)):
        raise ValueError(
            f"need signal (1) and background (0) jets, got {n_signal} signal and "
            f"{len(labels) - n_signal} background"
        )
    return labels.astype(bool), scores


def multiclass_inputs(
    labels: Any, probs: Any, *, min_columns: int = 2, name: str = "probs"
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probs) of multi-class inputs: ``probs`` (n, n_classes >= min_columns) finite,
    ``labels`` (n,) integers indexing its columns, jets of at least two classes. ``name``: the
    probabilities' name in errors."""
    probs = _array(probs, name, 2, "(n, n_classes)").astype(np.float64)
    if probs.shape[1] < min_columns:
        raise ValueError(f"{name} need at least {min_columns} class columns, got {probs.shape}")
    _require_size(len(probs), name, 1, "jets")
    labels = class_labels(labels, len(probs), f"rows of {name}")
    n_bad = int((~np.isfinite(probs).all(axis=1)).sum())
    if n_bad:
        raise ValueError(f"{name}: {n_bad} of {len(probs)} jets have non-finite probabilities")
    outside = (labels < 0) | (labels >= probs.shape[1])
    if outside.any():
        raise ValueError(
            f"labels: {int(outside.sum())} of {len(labels)} do not index the "
            f"{probs.shape[1]} columns of {name}"
        )
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"need jets of at least two classes, got only class {present.tolist()}")
    return labels, probs


def require_jets(n_jets: int, name: str, minimum: int = 1) -> None:
    """ValueError naming ``name`` (e.g. the sample and its files) if it has < ``minimum`` jets."""
    _require_size(n_jets, name, minimum, "jets")
