"""Declarative, invertible particle preprocessing for models (stored with every checkpoint).

A :class:`Preprocessing` is plain data (feature names, cut windows, shift and scale numbers)
so it can be written to YAML/JSON and safetensors metadata without pickling or ``eval``:

    standardised = (value - shift) / scale,     value = standardised * scale + shift

Applying it to a :class:`~jetfm.data.JetBatch`: compute each feature, drop particles outside
any cut window (counted per feature), order by pT, truncate to ``n_max`` (counted; optionally
then regroup by subjet, ``subjet_order``, and optionally give each subjet's particles
relative to its hardest one, ``subjet_frame``) and standardise, giving a
(n_jets, n_max, n_features) array and mask. A particle with a feature that is not finite
(log pT of a zero-pT or null particle, whose pT = 0 carries no weight) is dropped and
counted as ``non-finite <feature>``, so no NaN or inf reaches a model. Inverting turns model
outputs back into massless particles in the jet frame: the jet axis at
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

from jetfm.checks import POSITIVE, POSITIVE_INT, Rule, check_fields, check_flag, number
from jetfm.data.batch import JetBatch, JetDataError, SelectionReport
from jetfm.physics.clustering import subjet_groups

ANGLE_FEATURES = ("eta_rel", "phi_rel")
PT_FEATURES = ("pt", "log_pt")
# subjet_frame's label of each particle: k for the leader (hardest particle) of subjet k
# (0 = hardest subjet), N + k for the other particles of subjet k, N = subjet_order.
SUBJET_LABEL = "subjet_label"
# Its scale: standardised labels are 100 apart, so a k-means code never mixes particles of
# different labels (their features are in different frames).
SUBJET_LABEL_SCALE = 0.01
# Given relative to the reference particle in subjet_frame: the angles only. Relative log pT
# was tried: a jet's pT then compounds every particle's error through its leader, and
# generated jets' pT spread twice as wide as with absolute log pT (README, trial table).
FRAME_FEATURES = ANGLE_FEATURES


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
    subjet_frame: bool = False  # followers relative to their subjet's hardest particle

    def __post_init__(self) -> None:
        """``n_max`` >= 1 (particles per jet), ``subjet_order`` >= 0, ``subjet_frame`` a bool
        that needs ``subjet_order`` >= 1 and the features eta_rel, phi_rel and subjet_label
        (which exists only there); ``ValueError`` naming the key otherwise."""
        check_fields(self, {"n_max": POSITIVE_INT, "subjet_order": Rule(int, low=0)})
        check_flag("subjet_frame", self.subjet_frame)
        names = self.names
        if self.subjet_frame:
            needed = [*FRAME_FEATURES, SUBJET_LABEL]
            missing = [n for n in needed if n not in names]
            if not self.subjet_order:
                raise ValueError(f"subjet_frame: true needs subjet_order >= 1 (got "
                                 f"{self.subjet_order})")
            if missing:
                raise ValueError(f"subjet_frame: true needs the features {needed} (missing "
                                 f"{missing})")
            if self.n_max < self.subjet_order:
                raise ValueError(f"subjet_frame: true needs n_max >= subjet_order (got n_max "
                                 f"{self.n_max} < {self.subjet_order}): every jet keeps one "
                                 f"leader per subjet")
        elif SUBJET_LABEL in names:
            raise ValueError(f"feature {SUBJET_LABEL!r} exists only with subjet_frame: true")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``subjet_order`` and ``subjet_frame`` only when set (so the records
        and fingerprints of pT-ordered preprocessing stay what they were)."""
        out = asdict(self)
        for key in ("subjet_order", "subjet_frame"):
            if not out[key]:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls([FeatureTransform(**f) for f in data["features"]], int(data["n_max"]),
                   int(data.get("subjet_order", 0)), bool(data.get("subjet_frame", False)))

    def fit(self, batch: JetBatch) -> Preprocessing:
        """Set shift/scale of every feature to the mean/std over particles passing the cuts
        (the subjet label keeps its scale, :data:`SUBJET_LABEL_SCALE`)."""
        values, mask, _ = self.raw(batch)
        for i, feature in enumerate(self.features):
            if feature.name == SUBJET_LABEL:
                continue
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
            if feature.name == SUBJET_LABEL:  # set after the subjet grouping
                continue
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
            if feature.name == SUBJET_LABEL:
                continue
            column = columns[feature.name][keep][:, : self.n_max]
            padded = ak.fill_none(ak.pad_none(column, self.n_max, axis=1, clip=True), 0.0)
            values[..., i] = ak.to_numpy(padded)
        mask = np.arange(self.n_max)[None, :] < np.minimum(counts, self.n_max)[:, None]
        n_empty = int(np.sum(counts == 0))
        if n_empty:  # kept (the jets stay aligned with their labels), but said
            reports.append(SelectionReport(
                "jets with a particle", len(batch), len(batch) - n_empty,
                {"every particle cut (kept as an empty jet)": n_empty}))
        if self.subjet_order:  # the kept particles (after cuts and truncation), regrouped
            kinematics = [ak.to_numpy(ak.fill_none(ak.pad_none(
                column[keep][:, : self.n_max], self.n_max, axis=1, clip=True), 0.0))
                for column in (batch.pt, batch.eta_rel, batch.phi_rel)]
            order, group = subjet_groups(*kinematics, mask, self.subjet_order)
            values = np.take_along_axis(values, order[..., None], axis=1)
            if self.subjet_frame:
                values = self._to_subjet_frame(values, mask, group)
                short = int(np.sum(mask.sum(axis=1) < self.subjet_order))
                reports.append(SelectionReport(
                    f"jets with all {self.subjet_order} subjet leaders", len(batch),
                    len(batch) - short,
                    {f"fewer than {self.subjet_order} particles (kept, with fewer leaders; a "
                     f"grammar-constrained GPT never generates such jets)": short}))
        return values, mask, reports

    def _to_subjet_frame(self, values: np.ndarray, mask: np.ndarray, group: np.ndarray
                         ) -> np.ndarray:
        """Raw values in subjet order -> the leaders (each subjet's first, hardest, particle)
        first, by subjet rank, labelled k: the hardest subjet's leader unchanged, the others
        relative to it; then the other particles of each subjet (pT order inside), labelled
        N + k, relative to their leader. "Relative": eta_rel, phi_rel minus the reference's
        (log pT stays absolute)."""
        n, n_subjets = values.shape[1], self.subjet_order
        before = np.concatenate([np.full((len(group), 1), -2), group[:, :-1]], axis=1)
        leader = mask & (group != before)
        lead = np.maximum.accumulate(np.where(leader, np.arange(n), 0), axis=1)
        out = values.copy()
        for name in FRAME_FEATURES:
            i = self.names.index(name)
            reference = np.take_along_axis(values[..., i], lead, axis=1)
            relative = np.where(leader, values[..., i] - values[:, :1, i], 0.0)
            out[..., i] = np.where(mask & ~leader, values[..., i] - reference,
                                   np.where(leader & (group > 0), relative, values[..., i]))
        out[..., self.names.index(SUBJET_LABEL)] = np.where(
            leader, group, n_subjets + group)
        key = np.where(leader, group, n_subjets + np.arange(n))
        order = np.argsort(np.where(mask, key, np.iinfo(np.int64).max), axis=1, kind="stable")
        return np.take_along_axis(out, order[..., None], axis=1)

    def frame_levels(self, labels: np.ndarray, mask: np.ndarray
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Subjet frame: from the unstandardised labels (n_jets, n) (rounded to integers),
        which particles are given relative to another one, and to which, in the order the
        references must be resolved: [(leaders of subjets k >= 1, the index of the leader of
        subjet 0), (followers, the index of their subjet's leader)]. Each (dependent
        (n_jets, n) bool, reference index (n_jets, n) int64, 0 where not dependent). A
        reference is the first particle with its label, wherever it sits; a particle whose
        reference is missing (a generated sequence can lack it) stays relative to the jet
        axis: not dependent."""
        n_subjets = self.subjet_order
        labels = np.rint(np.asarray(labels, dtype=np.float64)).astype(np.int64)
        mask = np.asarray(mask, dtype=bool)
        firsts, present = [], []
        for k in range(n_subjets):
            is_k = mask & (labels == k)
            firsts.append(np.argmax(is_k, axis=1)[:, None])
            present.append(is_k.any(axis=1)[:, None])
        leaders = mask & (labels >= 1) & (labels < n_subjets) & present[0]
        levels = [(leaders, np.where(leaders, firsts[0], 0))]
        follower = np.zeros_like(mask)
        reference = np.zeros(labels.shape, dtype=np.int64)
        for k in range(n_subjets):
            of_k = mask & (labels == n_subjets + k) & present[k]
            follower |= of_k
            reference = np.where(of_k, firsts[k], reference)
        levels.append((follower, reference))
        return levels

    def unstandardise(self, values: np.ndarray) -> np.ndarray:
        """Standardised (..., n_features) -> raw float64 values (value * scale + shift)."""
        shift = np.array([f.shift for f in self.features])
        scale = np.array([f.scale for f in self.features])
        return np.asarray(values, dtype=np.float64) * scale + shift

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        """Raw (..., n_features) -> standardised float32 values ((raw - shift) / scale)."""
        shift = np.array([f.shift for f in self.features])
        scale = np.array([f.scale for f in self.features])
        return ((np.asarray(raw, dtype=np.float64) - shift) / scale).astype(np.float32)

    def subjet_labels(self, values: np.ndarray) -> np.ndarray:
        """Integer subjet labels (...,) of standardised ``values`` (..., n_features); only
        with ``subjet_frame`` (``ValueError`` otherwise)."""
        if not self.subjet_frame:
            raise ValueError("subjet labels exist only with subjet_frame: true")
        i = self.names.index(SUBJET_LABEL)
        raw = np.asarray(values, dtype=np.float64)[..., i] * self.features[i].scale
        return np.rint(raw + self.features[i].shift).astype(np.int64)

    def absolute(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Standardised ``values`` (n_jets, n, n_features) -> raw float64 values in the jet
        frame. With ``subjet_frame`` each particle given relative to another gets that one's
        absolute angles added (:meth:`frame_levels`: the order of the particles
        does not matter); the label column is left as is."""
        raw = self.unstandardise(values)
        if not self.subjet_frame:
            return raw
        out = raw.copy()
        columns = [self.names.index(name) for name in FRAME_FEATURES]
        for dependent, reference in self.frame_levels(
                raw[..., self.names.index(SUBJET_LABEL)], mask):
            for i in columns:
                ref = np.take_along_axis(out[..., i], reference, axis=1)
                out[..., i] = np.where(dependent, raw[..., i] + ref, out[..., i])
        return out

    def apply(self, batch: JetBatch) -> tuple[np.ndarray, np.ndarray, list[SelectionReport]]:
        """Standardised (n_jets, n_max, n_features) float32 values, mask, cut reports."""
        values, mask, reports = self.raw(batch)
        values = np.where(mask[..., None], self.standardise(values), 0.0).astype(np.float32)
        return values, mask, reports

    def pt(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Particle pT [GeV] (n_jets, n_max) from standardised ``values`` (the ``pt`` or
        ``log_pt`` feature), 0 at padded slots; ``JetDataError`` when neither is a feature."""
        pt_name = next((n for n in PT_FEATURES if n in self.names), None)
        if pt_name is None:
            raise JetDataError(f"no pT among the features {self.names}")
        raw = self.absolute(values, mask)[..., self.names.index(pt_name)]
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
        raw = self.absolute(values, mask)
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
                          subjet_order: int = 0, subjet_frame: bool = False) -> Preprocessing:
    """OmniJet-alpha's tokenizer inputs: log pT - 1.8, 3 eta_rel, 3 phi_rel, |angles| < 0.8.

    ``pt_min`` [GeV] optionally removes softer particles (counted): generator-level jets
    contain photons down to 1e-13 GeV whose log pT would dominate a squared-error loss;
    JetClass' detector-level constituents have no such tail. ``subjet_order`` = N > 0 orders
    each jet's kept particles by exclusive-kt subjet (N of them, hardest first, pT order
    inside: :func:`jetfm.physics.clustering.subjet_order`) instead of by pT alone (the
    paper's order); the token sequence then visits one prong after the other. With
    ``subjet_frame`` (needs ``subjet_order`` = N) the N subjet leaders (hardest particle of
    each subjet) come first, the hardest subjet's as it is and the others relative to it,
    then every other particle, relative to its leader ("relative": eta_rel, phi_rel minus the
    reference's; log pT stays absolute), plus a subjet label
    (:data:`SUBJET_LABEL`); a generator then places the prongs first and a follower token
    says "this far from prong k's core", so it lands near that prong whatever the generator
    got wrong about absolute positions (a jetfm departure from the paper). ``ValueError``
    naming the key when ``n_max`` is not an integer >= 1, ``pt_min``
    not a number > 0, ``subjet_order`` not an integer >= 0 or ``subjet_frame`` set without
    it.
    """
    pt_min = None if pt_min is None else number("pt_min", pt_min, POSITIVE)
    log_pt_min = None if pt_min is None else float(np.log(pt_min))
    features = [
        FeatureTransform("log_pt", shift=1.8, scale=1.0, min=log_pt_min),
        FeatureTransform("eta_rel", scale=1 / 3, min=-0.8, max=0.8),
        FeatureTransform("phi_rel", scale=1 / 3, min=-0.8, max=0.8),
    ]
    if check_flag("subjet_frame", subjet_frame):
        features.append(FeatureTransform(SUBJET_LABEL, scale=SUBJET_LABEL_SCALE))
    return Preprocessing(features, n_max=n_max, subjet_order=subjet_order,
                         subjet_frame=subjet_frame)
