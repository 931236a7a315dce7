"""The classical baseline of the tagging benchmark: gradient-boosted trees on jet observables.

Features: the five observables of :data:`GBDT_OBSERVABLES` (jet mass, tau21, tau32, soft-drop
mass, multiplicity), computed by :func:`jetfm.physics.observables.jet_observables` on the jets
as given (E-scheme jet mass; tau_N with exclusive-kt axes, beta = 1, r0 = 0.8; soft drop
beta = 0, z_cut = 0.1). This is the usual "substructure BDT" baseline of jet tagging (e.g. the
top-tagging comparison, Kasieczka et al., arXiv:1902.09914, section 3).

Classifier: scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier`
(multinomial log-loss, one tree per class and iteration), seeded, with early stopping on the
**given validation jets** (``X_val``/``y_val`` of ``fit``, scikit-learn >= 1.7): training stops
when the validation loss has not improved for ``n_iter_no_change`` iterations (scikit-learn
keeps the trees built up to that point). Defaults are scikit-learn's but ``max_iter`` (500
instead of 100, so that early stopping, not the cap, ends training at D = 1e4 per class) and
``n_iter_no_change`` (20 instead of 10).

**Non-finite observables.** tau21 of jets with one constituent and tau32 of jets with at
most two are NaN (0/0, see :mod:`jetfm.physics.observables`); every observable of a jet
without constituents is NaN. Such values are passed to the trees as NaN:
HistGradientBoosting handles missing values natively (at each split, the samples with a
missing value go to the side that lowers the loss most, learnt in training; see the
scikit-learn user guide, "Missing values support"). No jet is dropped; the count of NaN per
observable and split is kept in :attr:`GBDTTagger.nonfinite` and printed by the benchmark.
Infinite values (none is expected) are also turned into NaN and counted.

**No model file.** The fitted trees are not saved: a scikit-learn model would have to be
pickled, and jetfm never unpickles (a pickle can run code when loaded). The benchmark keeps
the baseline's test probabilities (``test_probs.npz``) and numbers instead; refitting takes
seconds to minutes on CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from jetfm.data.batch import JetBatch
from jetfm.models.tagger import Tagger, check_classes
from jetfm.physics.observables import jet_observables

GBDT_OBSERVABLES: tuple[str, ...] = ("mass", "tau21", "tau32", "sdmass", "n_particles")
"""Feature columns of the baseline, keys of :func:`jetfm.physics.observables.jet_observables`."""


@dataclass
class GBDTConfig:
    """Settings of :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (same names;
    defaults as scikit-learn's but ``max_iter`` and ``n_iter_no_change``, see the module
    docstring)."""

    max_iter: int = 500
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    n_iter_no_change: int = 20

    def __post_init__(self) -> None:
        from jetfm.checks import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Rule, check_fields

        check_fields(self, {"max_iter": POSITIVE_INT, "learning_rate": POSITIVE,
                            "max_leaf_nodes": Rule(int, low=2),
                            "min_samples_leaf": POSITIVE_INT,
                            "l2_regularization": NON_NEGATIVE,
                            "n_iter_no_change": POSITIVE_INT})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "gbdt") -> GBDTConfig:
        """From plain data (a YAML block); ``ValueError`` naming ``where`` and an unknown key
        or a bad value."""
        data = dict(data or {})
        valid = {f.name for f in fields(cls)}
        unknown = set(data) - valid
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid: {sorted(valid)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None


def observable_matrix(jets: JetBatch) -> tuple[np.ndarray, dict[str, int]]:
    """The baseline's features (n, 5) in the order of :data:`GBDT_OBSERVABLES` (float64, NaN
    where undefined) and the count of non-finite values per observable."""
    obs = jet_observables(jets)
    x = np.column_stack([np.asarray(obs[name], dtype=np.float64) for name in GBDT_OBSERVABLES])
    bad = ~np.isfinite(x)
    x[bad] = np.nan
    return x, {name: int(n) for name, n in zip(GBDT_OBSERVABLES, bad.sum(axis=0), strict=True)}


class GBDTTagger:
    """Gradient-boosted trees on :data:`GBDT_OBSERVABLES` (see the module docstring).

    ``fit(train_jets, val_jets, classes)`` then ``predict_proba(jets)`` -> (n, K) with columns
    in the order of ``classes``: the interface of :class:`jetfm.models.tagger.Tagger`, so the
    benchmark treats both alike.
    """

    name = "gbdt"

    def __init__(self, config: GBDTConfig | Mapping[str, Any] | None = None,
                 seed: int = 1) -> None:
        self.config = config if isinstance(config, GBDTConfig) else GBDTConfig.from_dict(config)
        self.seed = seed
        self.classes: list[str] = []
        self.model: Any = None
        self.nonfinite: dict[str, dict[str, int]] = {}

    def labels_of(self, jets: JetBatch, origin: str | None = None) -> np.ndarray:
        """Positions 0..K-1 of the jets' classes in :attr:`classes`: the same lookup and error
        (:class:`~jetfm.data.batch.JetDataError` naming ``origin`` and the classes found) as
        :meth:`jetfm.models.tagger.Tagger.labels_of`, which needs only ``classes``."""
        return Tagger.labels_of(self, jets, origin)  # type: ignore[arg-type]

    def fit(self, train_jets: JetBatch, val_jets: JetBatch, classes: Sequence[str]
            ) -> GBDTTagger:
        """Fit on ``train_jets`` with early stopping on ``val_jets``. ``ValueError`` for a jet
        whose class is not in ``classes``, a class without training jets, or fewer than two
        classes."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.classes = list(check_classes(classes))
        y_train = self.labels_of(train_jets, "training jets")
        y_val = self.labels_of(val_jets, "validation jets")
        missing = [c for k, c in enumerate(self.classes) if not (y_train == k).any()]
        if missing:
            raise ValueError(f"training jets: no jets of class(es) {missing}")
        x_train, bad_train = observable_matrix(train_jets)
        x_val, bad_val = observable_matrix(val_jets)
        self.nonfinite = {"train": bad_train, "val": bad_val}
        self.model = HistGradientBoostingClassifier(
            **asdict(self.config), early_stopping=True, scoring="loss", random_state=self.seed)
        self.model.fit(x_train, y_train, X_val=x_val, y_val=y_val)
        return self

    def predict_proba(self, jets: JetBatch) -> np.ndarray:
        """Class probabilities (n, K), columns in the order of :attr:`classes`; non-finite
        observables are counted in ``nonfinite["predict"]``."""
        if self.model is None:
            raise ValueError("GBDTTagger.predict_proba: call fit first")
        x, self.nonfinite["predict"] = observable_matrix(jets)
        probs = np.zeros((len(jets), len(self.classes)))
        probs[:, self.model.classes_] = self.model.predict_proba(x)
        return probs

    @property
    def n_iterations(self) -> int:
        """Boosting iterations kept (after early stopping)."""
        return int(self.model.n_iter_) if self.model is not None else 0

    @property
    def n_parameters(self) -> int:
        """Nodes of all fitted trees (split thresholds and leaf values): the trees' size, the
        closest analogue of a network's parameter count. Read from scikit-learn's fitted
        predictors (``_predictors``, not public API: 0 if a future version renames it)."""
        predictors = getattr(self.model, "_predictors", None) or []
        return int(sum(len(tree.nodes) for trees in predictors for tree in trees))
