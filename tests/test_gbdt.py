"""The gradient-boosted baseline (:mod:`jetfm.models.gbdt`): it learns a separable toy
problem from the five observables, keeps and counts jets with undefined ratios, and rejects
jets of classes outside its list."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from jetfm.data.batch import JetBatch
from jetfm.data.classes import class_index
from jetfm.metrics.tagging import multiclass_summary
from jetfm.models.gbdt import GBDT_OBSERVABLES, GBDTConfig, GBDTTagger, observable_matrix


def _jets(n: int, spread: float, label: str, seed: int, n_min: int = 4) -> JetBatch:
    """Jets of pT 500 GeV whose constituents spread by ``spread`` around the axis: the jet
    mass grows with the spread, so two spreads are separable by mass alone."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(n_min, 20, n)
    total = int(counts.sum())
    z = rng.exponential(1.0, total)
    jet = np.repeat(np.arange(n), counts)
    pt = 500 * z / np.bincount(jet, weights=z)[jet]
    eta, phi = rng.normal(0, spread, total), rng.normal(0, spread, total)
    return JetBatch.from_ptetaphi(*(ak.unflatten(v, counts) for v in (pt, eta, phi)),
                                  label=np.full(n, class_index(label)))


def _sample(n: int, seed: int) -> JetBatch:
    return JetBatch.concatenate([_jets(n, 0.03, "QCD", seed), _jets(n, 0.25, "Wqq", seed + 1)])


def test_learns_a_separable_toy_problem() -> None:
    tagger = GBDTTagger({"max_iter": 50}, seed=3).fit(_sample(150, 1), _sample(50, 2),
                                                      ["QCD", "Wqq"])
    test = _sample(200, 3)
    probs = tagger.predict_proba(test)
    assert probs.shape == (400, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    labels = tagger.labels_of(test)
    assert (labels == np.repeat([0, 1], 200)).all()
    summary = multiclass_summary(labels, probs, tagger.classes, n_bootstrap=2)
    assert summary["accuracy"].value > 0.95 and summary["macro_auc"].value > 0.98
    assert tagger.n_parameters > 0 and 1 <= tagger.n_iterations <= 50
    # seeded: the same fit gives the same probabilities
    again = GBDTTagger({"max_iter": 50}, seed=3).fit(_sample(150, 1), _sample(50, 2),
                                                     ["QCD", "Wqq"])
    np.testing.assert_array_equal(again.predict_proba(test), probs)


def test_column_order_follows_the_class_list() -> None:
    train, val, test = _sample(100, 1), _sample(40, 2), _sample(50, 3)
    a = GBDTTagger({"max_iter": 20}).fit(train, val, ["QCD", "Wqq"]).predict_proba(test)
    b = GBDTTagger({"max_iter": 20}).fit(train, val, ["Wqq", "QCD"]).predict_proba(test)
    assert (a[:50, 0] > 0.5).mean() > 0.9 and (b[:50, 1] > 0.5).mean() > 0.9  # QCD column


def test_undefined_ratios_are_kept_as_nan_and_counted() -> None:
    one = _jets(60, 0.1, "QCD", 7, n_min=1)
    x, bad = observable_matrix(one)
    n1, n2 = int((one.n_particles == 1).sum()), int((one.n_particles <= 2).sum())
    assert n1 > 0 and n2 > n1  # the sample holds 1- and 2-particle jets
    assert bad["tau21"] == n1 and bad["tau32"] == n2 and bad["mass"] == 0
    assert np.isnan(x[one.n_particles == 1, GBDT_OBSERVABLES.index("tau21")]).all()
    train = JetBatch.concatenate([_sample(100, 1), _jets(20, 0.03, "QCD", 9, n_min=1)])
    tagger = GBDTTagger({"max_iter": 20}).fit(train, _sample(30, 2), ["QCD", "Wqq"])
    probs = tagger.predict_proba(one)
    assert len(probs) == len(one) and np.isfinite(probs).all()  # no jet dropped
    assert tagger.nonfinite["train"]["tau21"] == int((train.n_particles == 1).sum()) > 0
    assert tagger.nonfinite["predict"]["tau32"] == n2


def test_labels_outside_the_class_list_raise() -> None:
    train = JetBatch.concatenate([_sample(20, 1), _jets(3, 0.1, "Hbb", 4)])
    with pytest.raises(ValueError, match=r"training jets: jets of classes \{'QCD': 20, 'Hbb': 3, "
                                         r"'Wqq': 20\} do not match the class list "
                                         r"\['QCD', 'Wqq'\] \(3 jets"):
        GBDTTagger().fit(train, _sample(10, 2), ["QCD", "Wqq"])
    with pytest.raises(ValueError, match=r"training jets: no jets of class\(es\) \['Zqq'\]"):
        GBDTTagger().fit(_sample(20, 1), _sample(10, 2), ["QCD", "Wqq", "Zqq"])
    with pytest.raises(ValueError, match=r"unknown classes \['W'\]"):
        GBDTTagger().fit(_sample(20, 1), _sample(10, 2), ["QCD", "W"])
    with pytest.raises(ValueError, match="gbdt: unknown keys \\['depth'\\]"):
        GBDTConfig.from_dict({"depth": 3})
    with pytest.raises(ValueError, match="learning_rate"):
        GBDTConfig.from_dict({"learning_rate": -1})
