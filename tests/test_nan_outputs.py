"""Issue 11 (tester, defect 7): no NaN or inf is written into a JSON table or printed bare."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jetfm.metrics.generation import Estimate
from jetfm.metrics.two_sample import classifier_two_sample_auc
from jetfm.report import format_value, json_safe, markdown_table, read_table, write_table


def _strict(text: str) -> object:
    """Standard JSON only: NaN / Infinity tokens fail the test."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_write_table_writes_null_for_non_finite_numbers(tmp_path) -> None:
    rows = [{"metric": "W1", "value": float("nan"), "error": np.float64("inf"),
             "floor": np.float32("-inf"), "n": 3, "list": [1.5, float("nan")]}]
    path = write_table(tmp_path / "t.table.json", rows, title="T")
    payload = _strict(path.read_text())
    assert payload["rows"] == [{"metric": "W1", "value": None, "error": None, "floor": None,
                                "n": 3, "list": [1.5, None]}]
    assert read_table(path)[2][0]["value"] is None


def test_json_safe_keeps_finite_numbers_exactly() -> None:
    assert json_safe({"a": 0.1, "b": np.float64(2.5), "c": (1, None)}) == {
        "a": 0.1, "b": 2.5, "c": [1, None]}
    assert isinstance(json_safe(np.float32(1.5)), float)


def test_markdown_shows_nan_as_not_available() -> None:
    assert format_value(float("nan")) == "n/a"
    assert "nan" not in markdown_table([{"value": float("nan")}])


def test_estimate_text_says_why_instead_of_nan() -> None:
    assert str(Estimate(float("nan"), float("nan"), "undefined: 3 of 3 jets")) == (
        "n/a (undefined: 3 of 3 jets)")
    assert str(Estimate(0.5, float("nan"), "why")) == "0.5 ± n/a (why)"
    assert str(Estimate(0.5, 0.01)) == "0.5 ± 0.01"


def test_c2st_error_undefined_is_explained_not_a_bare_nan() -> None:
    """Two held-out jets (one per class): no resampling holds both classes twice over."""
    rng = np.random.default_rng(0)
    result = classifier_two_sample_auc(rng.normal(size=(20, 3)), rng.normal(3, 1, (20, 3)),
                                       n_bootstrap=2, seed=0, test_fraction=0.05)
    assert np.isfinite(result.value)
    assert math.isnan(result.error) and result.note.startswith("error undefined: ")
    assert "bootstrap resamplings of the 2 held-out jets hold both classes" in result.note
    assert "nan" not in str(result)
    with pytest.raises(ValueError, match="n_bootstrap"):
        classifier_two_sample_auc(rng.normal(size=(4, 3)), rng.normal(size=(4, 3)),
                                  n_bootstrap=1)


def test_c2st_of_small_samples_splits_or_says_it_cannot() -> None:
    """30 jets per sample: far-apart samples are told apart (scikit-learn's default 20 jets
    per leaf could not split 30 training jets and gave 0.5); a classifier that makes no split
    (identical constant features) gives n/a with the reason, not 0.5."""
    rng = np.random.default_rng(1)
    apart = classifier_two_sample_auc(rng.normal(size=(30, 1)), rng.normal(5, 1, (30, 1)),
                                      n_bootstrap=5, seed=0)
    assert apart.value > 0.95
    same = classifier_two_sample_auc(np.ones((30, 2)), np.ones((30, 2)), n_bootstrap=5, seed=0)
    assert math.isnan(same.value) and "made no split on 30 training jets" in same.note
    assert str(same).startswith("n/a (undefined: the classifier made no split")
