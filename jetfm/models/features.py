"""Declarative model inputs: which particle (and jet) features a backbone sees, and how.

A :class:`FeatureSpec` is plain data stored with every model, in the style of weaver's data
configs (``JetClass_full.yaml``): per feature a name, ``subtract``, ``multiply`` and an
optional ``clip`` window, applied as

    x' = clip((x - subtract) * multiply, clip[0], clip[1])

Applying a spec to a :class:`~jetfm.data.JetBatch` (:meth:`FeatureSpec.apply`) orders the
particles by pT, drops those whose feature is not finite (log pT of a pT = 0 particle; counted),
truncates to ``n_max`` (counted) and returns a :class:`ParticleInputs`: the transformed
features, the four-momenta (E, px, py, pz) [GeV] of the same particles (for pairwise features
and Lorentz-equivariant backbones) and the padding mask.

Particle feature names: stored fields of the batch (``charge``, ``is_photon``, ``d0val``, ...,
see :data:`jetfm.data.batch.OPTIONAL_PARTICLE_FIELDS`) or quantities derived from the
four-momenta (:data:`jetfm.data.batch.DERIVED_PARTICLE_FEATURES`). Jet feature names:
:data:`JET_FEATURES` or a numeric per-jet ``extra`` column.

Defaults (:data:`KIN_FEATURES`): weaver's ``kin`` input set of ParT for top tagging
(jet-universe/particle_transformer ``data/TopLandscape/top_kin.yaml``, the first seven
features of ``data/JetClass/JetClass_full.yaml``), every value clipped to [-5, 5]:
log pT (1.7, 0.7), log E (2.0, 0.7), log pT_rel (-4.7, 0.7), log E_rel (-4.7, 0.7),
Delta R (0.2, 4.0), Delta eta, Delta phi (as is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from jetfm.checks import POSITIVE_INT, check_fields, from_mapping, number
from jetfm.data.batch import (
    DERIVED_PARTICLE_FEATURES,
    MOMENTUM_FIELDS,
    OPTIONAL_PARTICLE_FIELDS,
    JetBatch,
    JetDataError,
    SelectionReport,
)
from jetfm.data.transforms import FeatureTransform, Preprocessing

PARTICLE_FEATURES: frozenset[str] = frozenset(
    MOMENTUM_FIELDS + OPTIONAL_PARTICLE_FIELDS + DERIVED_PARTICLE_FEATURES)
"""Particle feature names a spec may use: stored fields and quantities derived from the
four-momenta (:mod:`jetfm.data.batch`)."""
JET_FEATURES: tuple[str, ...] = (
    "jet_pt", "jet_eta", "jet_phi", "jet_mass", "jet_energy", "n_particles",
)
P4_COLUMNS: tuple[str, ...] = ("energy", "px", "py", "pz")  # ParticleInputs.p4 order


@dataclass(frozen=True)
class InputFeature:
    """One input: ``name``, then ``(x - subtract) * multiply``, clipped to ``clip`` if given."""

    name: str
    subtract: float = 0.0
    multiply: float = 1.0
    clip: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        """Numbers finite, ``clip`` an ordered pair; ``ValueError`` naming the feature."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"feature name must be a non-empty string, got {self.name!r}")
        for key in ("subtract", "multiply"):
            object.__setattr__(self, key, number(f"{self.name}: {key}", getattr(self, key)))
        if self.clip is not None:
            clip = tuple(self.clip)
            if len(clip) != 2:
                raise ValueError(f"{self.name}: clip must be [low, high], got {self.clip!r}")
            low, high = (number(f"{self.name}: clip", c) for c in clip)
            if not low < high:
                raise ValueError(f"{self.name}: clip must be [low, high] with low < high, "
                                 f"got {self.clip!r}")
            object.__setattr__(self, "clip", (low, high))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """The transformed values (any shape, float32)."""
        out = (np.asarray(values, dtype=np.float64) - self.subtract) * self.multiply
        if self.clip is not None:
            out = np.clip(out, *self.clip)
        return out.astype(np.float32)

    @classmethod
    def parse(cls, item: str | Mapping[str, Any], where: str = "features") -> InputFeature:
        """From a name or a mapping ``{name, subtract, multiply, clip}``; ``ValueError``
        naming ``where`` and the unknown keys."""
        if isinstance(item, str):
            return cls(item)
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: a feature is a name or a mapping, got {item!r}")
        if "name" not in item:
            raise ValueError(f"{where}: feature {dict(item)!r} has no name")
        return from_mapping(cls, item, f"{where}: feature {item['name']!r}")


def _features(items: Iterable[Any], where: str) -> tuple[InputFeature, ...]:
    out = tuple(i if isinstance(i, InputFeature) else InputFeature.parse(i, where) for i in items)
    names = [f.name for f in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{where}: features {duplicates} appear more than once")
    return out


@dataclass
class ParticleInputs:
    """A padded particle batch, the input of every backbone (numpy arrays or torch tensors).

    * ``features``: (B, P, F) float32 transformed particle features, 0 in padded slots;
    * ``p4``: (B, P, 4) float32 four-momenta (E, px, py, pz) [GeV] of the same particles;
    * ``mask``: (B, P) bool, True for real particles (for token inputs: real tokens);
    * ``jet``: (B, J) float32 transformed jet features, or None;
    * ``tokens``: (B, L) int64 token sequences of a token backbone (``mask`` then masks them),
      or None.
    """

    mask: Any
    features: Any = None
    p4: Any = None
    jet: Any = None
    tokens: Any = None

    def __len__(self) -> int:
        return len(self.mask)

    def items(self) -> dict[str, Any]:
        """The fields that are set (what a DataLoader collates)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    def __getitem__(self, index: Any) -> ParticleInputs:
        return ParticleInputs(**{k: v[index] for k, v in self.items().items()})

    def to_torch(self, device: Any = "cpu") -> ParticleInputs:
        """Tensors on ``device`` (float -> float32, bool and int64 kept)."""
        out = {}
        for key, value in self.items().items():
            t = torch.as_tensor(value, device=device)
            out[key] = t.float() if t.is_floating_point() else t
        return ParticleInputs(**out)


@dataclass
class FeatureSpec:
    """What a backbone sees (see the module docstring): particle and jet features and the
    maximum number of particles ``n_max`` (the softest beyond it are dropped, counted)."""

    particle: tuple[InputFeature, ...] = ()
    jet: tuple[InputFeature, ...] = ()
    n_max: int = 128

    def __post_init__(self) -> None:
        """Features parsed and checked: particle feature names must be known to
        :class:`~jetfm.data.JetBatch` (:data:`PARTICLE_FEATURES`; jet features may also name
        per-jet extras, checked against the data); ``n_max`` >= 1. ``ValueError`` naming the
        feature otherwise."""
        self.particle = _features(self.particle, "particle features")
        unknown = [f.name for f in self.particle if f.name not in PARTICLE_FEATURES]
        if unknown:
            raise ValueError(f"particle features {unknown} are unknown; known: "
                             f"{sorted(PARTICLE_FEATURES)}")
        self.jet = _features(self.jet, "jet features")
        check_fields(self, {"n_max": POSITIVE_INT})

    @property
    def names(self) -> tuple[str, ...]:
        """Particle feature names, in input order."""
        return tuple(f.name for f in self.particle)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored in model files; :meth:`from_dict` reads it back)."""
        def plain(f: InputFeature) -> dict[str, Any]:
            return {"name": f.name, "subtract": f.subtract, "multiply": f.multiply,
                    "clip": None if f.clip is None else list(f.clip)}

        return {"particle": [plain(f) for f in self.particle],
                "jet": [plain(f) for f in self.jet], "n_max": self.n_max}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "features") -> FeatureSpec:
        """From :meth:`to_dict` output or a config block (``particle``: names or mappings,
        ``jet``, ``n_max``); ``ValueError`` naming ``where`` and the bad key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping with keys particle, jet, n_max")
        unknown = set(data) - {"particle", "jet", "n_max"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid: "
                             "['jet', 'n_max', 'particle']")
        particle = _features(data.get("particle", ()), f"{where}: particle")
        jet = _features(data.get("jet", ()) or (), f"{where}: jet")
        try:
            return cls(particle, jet, data.get("n_max", 128))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    def with_n_max(self, n_max: int) -> FeatureSpec:
        return replace(self, n_max=n_max)

    def missing(self, batch: JetBatch) -> list[str]:
        """Names of the features ``batch`` can provide neither stored nor derived."""
        particle = [f.name for f in self.particle if f.name not in batch.particles.fields
                    and f.name not in DERIVED_PARTICLE_FEATURES]
        jet = [f.name for f in self.jet if f.name not in JET_FEATURES
               and not (f.name in batch.extra and isinstance(batch.extra[f.name], np.ndarray)
                        and batch.extra[f.name].ndim == 1)]
        return particle + [f"jet: {n}" for n in jet]

    def apply(
        self, batch: JetBatch, origin: str | None = None
    ) -> tuple[ParticleInputs, list[SelectionReport]]:
        """The model inputs of ``batch`` (numpy) and the reports of the particle selection
        (particles with pT = 0 or a non-finite feature dropped, truncation to ``n_max``).

        Raises :class:`~jetfm.data.batch.JetDataError` naming ``origin`` (default: the batch's
        source files) and the features the data lack, or a jet whose jet feature is not finite.
        """
        origin = origin or ", ".join(batch.source_files) or "<memory>"
        missing = self.missing(batch)
        if missing:
            raise JetDataError(
                f"{origin}: the model needs features {missing} that the data lack "
                f"(stored particle fields: {list(batch.particles.fields)}; derived: "
                f"{list(DERIVED_PARTICLE_FEATURES)}; jet: {list(JET_FEATURES)} or per-jet "
                "extras)")
        names = [n for n in dict.fromkeys(("pt", *self.names, *P4_COLUMNS))]
        # particles with pT = 0 carry no weight and no direction: dropped for every backbone
        # (whatever its features) and counted as "outside pt window"
        transforms = [FeatureTransform(n, min=0.0 if n == "pt" else None) for n in names]
        raw, mask, reports = Preprocessing(transforms, self.n_max).raw(batch)
        columns = {n: raw[..., i] for i, n in enumerate(names)}
        features = np.zeros((*mask.shape, len(self.particle)), dtype=np.float32)
        for i, feature in enumerate(self.particle):
            features[..., i] = np.where(mask, feature.transform(columns[feature.name]), 0.0)
        p4 = np.stack([np.where(mask, columns[c], 0.0) for c in P4_COLUMNS], axis=-1)
        jet = None
        if self.jet:
            jet = np.stack([f.transform(self._jet_column(batch, f.name)) for f in self.jet], -1)
            bad = ~np.isfinite(jet).all(axis=1)
            if bad.any():
                raise JetDataError(f"{origin}: jets {np.flatnonzero(bad)[:10].tolist()} have "
                                   f"non-finite jet features {[f.name for f in self.jet]}")
        return ParticleInputs(mask, features, p4.astype(np.float32), jet), reports

    @staticmethod
    def _jet_column(batch: JetBatch, name: str) -> np.ndarray:
        if name in batch.extra:
            return np.asarray(batch.extra[name], dtype=np.float64)
        return np.asarray(getattr(batch, name), dtype=np.float64)


def _kin(clip: tuple[float, float] = (-5.0, 5.0)) -> tuple[InputFeature, ...]:
    return (
        InputFeature("log_pt", 1.7, 0.7, clip),
        InputFeature("log_energy", 2.0, 0.7, clip),
        InputFeature("log_pt_rel", -4.7, 0.7, clip),
        InputFeature("log_energy_rel", -4.7, 0.7, clip),
        InputFeature("delta_r", 0.2, 4.0, clip),
        InputFeature("eta_rel", 0.0, 1.0, clip),
        InputFeature("phi_rel", 0.0, 1.0, clip),
    )


KIN_FEATURES = FeatureSpec(_kin(), n_max=128)
"""weaver's ``kin`` set (7 features; see the module docstring), up to 128 particles."""


def feature_spec(value: FeatureSpec | Mapping[str, Any] | Sequence[Any] | None,
                 default: FeatureSpec, where: str = "features") -> FeatureSpec:
    """A spec from a config value: None -> ``default``; a list -> particle features with the
    default's jet features and ``n_max``; a mapping -> :meth:`FeatureSpec.from_dict` with the
    default's ``particle``, ``jet`` and ``n_max`` where not given (``{n_max: 64}``)."""
    if value is None:
        return default
    if isinstance(value, FeatureSpec):
        return value
    if isinstance(value, Mapping):  # keys not given keep the default's
        return FeatureSpec.from_dict({**default.to_dict(), **value}, where)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return FeatureSpec(_features(value, where), default.jet, default.n_max)
    raise ValueError(f"{where}: expected a list of features or a mapping, got {value!r}")

