"""Declarative, invertible particle preprocessing for models (stored with every checkpoint).

A :class:`Preprocessing` is plain data (feature names, cut windows, shift and scale numbers)
so it can be written to YAML/JSON and safetensors metadata without pickling or ``eval``:

    standardised = (value - shift) / scale,     value = standardised * scale + shift

Applying it to a :class:`~jetfm.data.JetBatch`: compute each feature, drop particles outside
any cut window (counted per feature), order by pT, truncate to ``n_max`` (counted; optionally
then regroup by subjet, ``subjet_order``) and
standardise, giving a (n_jets, n_max, n_features) array and mask. A particle with a feature
that is not finite (log pT of a zero-pT or null particle, whose pT = 0 carries no weight) is
dropped and counted as ``non-finite <feature>``, so no NaN or inf reaches a model. Inverting
turns model outputs back into massless particles in the jet frame: the jet axis at
eta = phi = 0 with pt from ``pt`` or ``log_pt`` and angles from ``eta_rel``, ``phi_rel``
(OmniJet-alpha's representation; jet mass and substructure do not depend on where the axis sits).

The OmniJet-alpha default is :func:`omnijet_preprocessing`: (log pT [GeV] - 1.8),
3 eta_rel, 3 phi_rel, with |eta_rel|, |phi_rel| < 0.8, up to 128 constituents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from jetfm.checks import POSITIVE, POSITIVE_INT, Rule, check_fields, number
from jetfm.data.batch import JetBatch, JetDataError, SelectionReport
from jetfm.physics.clustering import subjet_order

ANGLE_FEATURES = ("eta_rel", "phi_rel")
PT_FEATURES = ("pt", "log_pt")


@dataclass
class FeatureTransform:
    """One particle feature: its name, cut window on the raw value, shift and scale."""

    name: str
    shift: float = 0.0
    scale: float = 1.0
    min: float | None = None
    max: float | None = None


@dataclass
class Preprocessing:
    """Particle features for a model; see the module docstring."""

    features: list[FeatureTransform] = field(default_factory=list)
    n_max: int = 128
    subjet_order: int = 0  # 0: pT order; N: grouped by exclusive-kt subjet (N subjets)

    def __post_init__(self) -> None:
        """``n_max`` >= 1 (particles per jet), ``subjet_order`` >= 0; ``ValueError`` naming
        the key otherwise."""
        check_fields(self, {"n_max": POSITIVE_INT, "subjet_order": Rule(int, low=0)})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``subjet_order`` only when set (so the records and fingerprints of
        pT-ordered preprocessing stay what they were)."""
        out = asdict(self)
        if not self.subjet_order:
            del out["subjet_order"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls([FeatureTransform(**f) for f in data["features"]], int(data["n_max"]),
                   int(data.get("subjet_order", 0)))

    def fit(self, batch: JetBatch) -> Preprocessing:
        """Set shift/scale of every feature to the mean/std over particles passing the cuts."""
        values, mask, _ = self.raw(batch)
        for i, feature in enumerate(self.features):
            column = values[..., i][mask]
            feature.shift = float(column.mean())
            feature.scale = float(column.std()) or 1.0
        return self

    def raw(self, batch: JetBatch) -> tuple[np.ndarray, np.ndarray, list[SelectionReport]]:
        """Unstandardised features after cuts and truncation: values, mask, reports."""
        batch = batch.sort_by_pt()
        keep = ak.ones_like(batch.particles.px, dtype=bool)
        n_before = int(ak.sum(batch.n_particles))
        removed = {}
        columns = {}
        for feature in self.features:
            with np.errstate(divide="ignore", invalid="ignore"):  # -inf/NaN: dropped, counted
                column = batch.particle_feature(feature.name)
            columns[feature.name] = column
            finite = np.isfinite(column)
            removed[f"non-finite {feature.name}"] = int(ak.sum(keep & ~finite))
            keep = keep & finite
            inside = ak.ones_like(keep)
            if feature.min is not None:
                inside = inside & (column > feature.min)
            if feature.max is not None:
                inside = inside & (column < feature.max)
            removed[f"outside {feature.name} window"] = int(ak.sum(keep & ~inside))
            keep = keep & inside
        counts = ak.to_numpy(ak.sum(keep, axis=1))
        reports = [SelectionReport("particle cuts", n_before, int(counts.sum()), removed)]
        n_truncated = int(np.maximum(counts - self.n_max, 0).sum())
        reports.append(
            SelectionReport(
                f"truncation to {self.n_max}",
                int(counts.sum()),
                int(counts.sum()) - n_truncated,
                {"softest beyond n_max": n_truncated},
            )
        )
        values = np.zeros((len(batch), self.n_max, len(self.features)), dtype=np.float32)
        for i, feature in enumerate(self.features):
            column = columns[feature.name][keep][:, : self.n_max]
            padded = ak.fill_none(ak.pad_none(column, self.n_max, axis=1, clip=True), 0.0)
            values[..., i] = ak.to_numpy(padded)
        mask = np.arange(self.n_max)[None, :] < np.minimum(counts, self.n_max)[:, None]
        if self.subjet_order:  # the kept particles (after cuts and truncation), regrouped
            kinematics = [ak.to_numpy(ak.fill_none(ak.pad_none(
                column[keep][:, : self.n_max], self.n_max, axis=1, clip=True), 0.0))
                for column in (batch.pt, batch.eta_rel, batch.phi_rel)]
            order = subjet_order(*kinematics, mask, self.subjet_order)
            values = np.take_along_axis(values, order[..., None], axis=1)
        return values, mask, reports

    def apply(self, batch: JetBatch) -> tuple[np.ndarray, np.ndarray, list[SelectionReport]]:
        """Standardised (n_jets, n_max, n_features) float32 values, mask, cut reports."""
        values, mask, reports = self.raw(batch)
        shift = np.array([f.shift for f in self.features], dtype=np.float32)
        scale = np.array([f.scale for f in self.features], dtype=np.float32)
        values = np.where(mask[..., None], (values - shift) / scale, 0.0).astype(np.float32)
        return values, mask, reports

    def pt(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Particle pT [GeV] (n_jets, n_max) from standardised ``values`` (the ``pt`` or
        ``log_pt`` feature), 0 at padded slots; ``JetDataError`` when neither is a feature."""
        pt_name = next((n for n in PT_FEATURES if n in self.names), None)
        if pt_name is None:
            raise JetDataError(f"no pT among the features {self.names}")
        feature = self.features[self.names.index(pt_name)]
        raw = np.asarray(values, dtype=np.float64)[..., self.names.index(pt_name)]
        raw = raw * feature.scale + feature.shift
        pt = np.exp(raw) if pt_name == "log_pt" else raw
        return np.where(np.asarray(mask, dtype=bool), pt, 0.0)

    def invert(self, values: np.ndarray, mask: np.ndarray, **batch_kwargs: Any) -> JetBatch:
        """Standardised model outputs -> massless particles around a jet axis at eta = phi = 0.

        Needs ``pt`` or ``log_pt`` and both ``eta_rel`` and ``phi_rel`` among the features.
        """
        names = self.names
        pt_name = next((n for n in PT_FEATURES if n in names), None)
        if pt_name is None or not all(a in names for a in ANGLE_FEATURES):
            raise JetDataError(f"cannot build particles from features {names}")
        shift = np.array([f.shift for f in self.features])
        scale = np.array([f.scale for f in self.features])
        raw = np.asarray(values, dtype=np.float64) * scale + shift
        mask = np.asarray(mask, dtype=bool)
        counts = mask.sum(axis=1)

        def column(name: str) -> ak.Array:
            return ak.unflatten(raw[..., names.index(name)][mask], counts)

        pt = column(pt_name)
        if pt_name == "log_pt":
            pt = np.exp(pt)
        return JetBatch.from_ptetaphi(
            pt, column("eta_rel"), column("phi_rel"), 0.0, **batch_kwargs
        )


def omnijet_preprocessing(n_max: int = 128, pt_min: float | None = None,
                          subjet_order: int = 0) -> Preprocessing:
    """OmniJet-alpha's tokenizer inputs: log pT - 1.8, 3 eta_rel, 3 phi_rel, |angles| < 0.8.

    ``pt_min`` [GeV] optionally removes softer particles (counted): generator-level jets
    contain photons down to 1e-13 GeV whose log pT would dominate a squared-error loss;
    JetClass' detector-level constituents have no such tail. ``subjet_order`` = N > 0 orders
    each jet's kept particles by exclusive-kt subjet (N of them, hardest first, pT order
    inside: :func:`jetfm.physics.clustering.subjet_order`) instead of by pT alone (the
    paper's order); the token sequence then visits one prong after the other. ``ValueError``
    naming the key when ``n_max`` is not an integer >= 1, ``pt_min`` not a number > 0 or
    ``subjet_order`` not an integer >= 0.
    """
    pt_min = None if pt_min is None else number("pt_min", pt_min, POSITIVE)
    log_pt_min = None if pt_min is None else float(np.log(pt_min))
    return Preprocessing(
        [
            FeatureTransform("log_pt", shift=1.8, scale=1.0, min=log_pt_min),
            FeatureTransform("eta_rel", scale=1 / 3, min=-0.8, max=0.8),
            FeatureTransform("phi_rel", scale=1 / 3, min=-0.8, max=0.8),
        ],
        n_max=n_max,
        subjet_order=subjet_order,
    )
