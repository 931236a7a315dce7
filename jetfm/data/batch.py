"""`JetBatch`: the one representation of a batch of jets in jetfm.

Every reader returns a :class:`JetBatch`, the generator writes them, and later models
consume its padded view. A batch holds

* ``particles``: a ragged awkward array, jets x (variable) particles x record. Every record
  has the four-momentum ``px, py, pz, energy`` [GeV]; a source may add the optional fields in
  :data:`OPTIONAL_PARTICLE_FIELDS` (charge, PDG id, impact parameters, PUPPI weight, the
  JetClass particle-type flags).
* ``label``: int64 per jet, an index into :data:`jetfm.data.classes.CLASSES`
  (-1 = unlabelled).
* ``extra``: per-jet columns carried over from the source (for example ``truth_match``):
  numpy arrays of shape (n_jets, ...) or, for values with a varying number of entries per jet
  (e.g. the 1-3 generator partons of a QCD jet), ragged awkward arrays of length n_jets.
  Slicing, :meth:`JetBatch.concatenate` and the Parquet round trip keep both kinds.
* provenance: ``source_files`` (tuple of paths) with per-jet ``source`` (index into it) and
  ``entry`` (entry number inside that file).

Derived quantities (``pt``, ``eta``, ``phi``, ``eta_rel``, ``phi_rel``, ``log_pt``, ...,
``jet_pt``, ``jet_mass``, ``n_particles``) are computed on access. Jet kinematics are the
E-scheme sum of the constituents held in the batch; ``eta_rel = eta - jet_eta`` and
``phi_rel = phi - jet_phi`` wrapped into (-pi, pi] as in JetClass' ``part_deta/part_dphi``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from jetfm.data.classes import CLASSES, UNLABELLED, class_name
from jetfm.physics import kinematics as kin

MOMENTUM_FIELDS: tuple[str, ...] = ("px", "py", "pz", "energy")
PARTICLE_TYPE_FLAGS: tuple[str, ...] = (
    "is_charged_hadron",
    "is_neutral_hadron",
    "is_photon",
    "is_electron",
    "is_muon",
)
OPTIONAL_PARTICLE_FIELDS: tuple[str, ...] = (
    "charge",  # [e]
    "pid",  # PDG id
    "d0val",  # transverse impact parameter [mm]
    "d0err",
    "dzval",  # longitudinal impact parameter [mm]
    "dzerr",
    "puppi_weight",
    *PARTICLE_TYPE_FLAGS,
)
# Quantities computed from the four-momenta; usable wherever a feature name is accepted.
DERIVED_PARTICLE_FEATURES: tuple[str, ...] = (
    "pt",
    "eta",
    "phi",
    "mass",
    "log_pt",
    "log_energy",
    "eta_rel",
    "phi_rel",
    "delta_r",
    "pt_rel",
    "energy_rel",
    "log_pt_rel",
    "log_energy_rel",
)


# The remedy named by every invalid-jet error, for the Python API and the command line.
SKIP_INVALID_HINT = (
    "to drop such jets with a count, pass skip_invalid=True (Python) or --skip-invalid "
    "(jetfm command line)"
)


class JetDataError(ValueError):
    """Invalid jet data. The message names the file (or origin), the key and the problem."""


@dataclass
class SelectionReport:
    """What a cut or a cleaning step removed; printed by ``jetfm info`` and the readers."""

    name: str
    n_before: int
    n_after: int
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def n_removed(self) -> int:
        return self.n_before - self.n_after

    def __str__(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in self.removed.items() if v) or "none"
        return f"{self.name}: kept {self.n_after} / {self.n_before} (removed {reasons})"


@dataclass
class Padded:
    """Zero-padded view of a batch.

    ``values``: (n_jets, n_max, n_features); ``mask``: (n_jets, n_max) bool, True for real
    particles; ``features``: the feature names along the last axis; ``n_truncated``: how many
    particles beyond ``n_max`` were dropped (after pT ordering, the softest).
    """

    values: np.ndarray
    mask: np.ndarray
    features: tuple[str, ...]
    n_truncated: int

    def feature(self, name: str) -> np.ndarray:
        """The (n_jets, n_max) slice of one feature."""
        return self.values[..., self.features.index(name)]

    def to_torch(self, device: Any = "cpu") -> tuple[Any, Any]:
        """(values, mask) as torch tensors (float32, bool) on ``device``."""
        import torch

        values = torch.as_tensor(self.values, dtype=torch.float32, device=device)
        return values, torch.as_tensor(self.mask, dtype=torch.bool, device=device)


def _as_int_array(x: Any, n: int, default: int, name: str) -> np.ndarray:
    if x is None:
        return np.full(n, default, dtype=np.int64)
    arr = np.asarray(x, dtype=np.int64).reshape(-1)
    if len(arr) != n:
        raise JetDataError(f"{name} has {len(arr)} entries for {n} jets")
    return arr


def _extra_column(key: str, value: Any, n: int) -> np.ndarray | ak.Array:
    """A per-jet extra as numpy (n, ...) or, if nested/ragged, as an awkward array of length n.

    A flat awkward column becomes numpy; nested awkward columns stay awkward whatever their
    content, so the type of an extra never depends on the values of one chunk.
    """
    if isinstance(value, ak.Array):
        if value.ndim == 1 and not value.fields:
            try:
                value = ak.to_numpy(value)
            except (ValueError, TypeError):  # option or union type: keep it awkward
                pass
        if isinstance(value, ak.Array):
            if len(value) != n:
                raise JetDataError(f"extra[{key!r}] has {len(value)} entries for {n} jets")
            return value
    arr = np.asarray(value)
    if arr.shape[:1] != (n,):
        raise JetDataError(f"extra[{key!r}] has shape {arr.shape} for {n} jets")
    return arr


def _concatenate_extra(values: Sequence[np.ndarray | ak.Array]) -> np.ndarray | ak.Array:
    """Join one extra column of several batches: numpy if all are numpy, else awkward."""
    if all(isinstance(v, np.ndarray) for v in values):
        return np.concatenate(values)
    return ak.concatenate([ak.Array(v) if isinstance(v, np.ndarray) else v for v in values])


@dataclass
class JetBatch:
    """A batch of jets: ragged particles, labels, per-jet extras and provenance."""

    particles: ak.Array
    label: np.ndarray | None = None
    extra: dict[str, np.ndarray | ak.Array] = field(default_factory=dict)
    source_files: tuple[str, ...] = ()
    source: np.ndarray | None = None
    entry: np.ndarray | None = None

    def __post_init__(self) -> None:
        particles = self.particles
        if not isinstance(particles, ak.Array):
            particles = ak.Array(particles)
        if particles.ndim != 2 or not particles.fields:
            raise JetDataError(
                f"particles must be jets x particles x record, got type {particles.type}"
            )
        missing = [f for f in MOMENTUM_FIELDS if f not in particles.fields]
        if missing:
            raise JetDataError(f"particles lack the four-momentum fields {missing}")
        unknown = set(particles.fields) - set(MOMENTUM_FIELDS) - set(OPTIONAL_PARTICLE_FIELDS)
        if unknown:
            raise JetDataError(
                f"unknown particle fields {sorted(unknown)}; allowed: "
                f"{list(MOMENTUM_FIELDS + OPTIONAL_PARTICLE_FIELDS)}"
            )
        self.particles = particles
        n = len(particles)
        self.label = _as_int_array(self.label, n, UNLABELLED, "label")
        if np.any((self.label < UNLABELLED) | (self.label >= len(CLASSES))):
            raise JetDataError(f"labels must lie in [-1, {len(CLASSES) - 1}]")
        self.source = _as_int_array(self.source, n, 0 if self.source_files else -1, "source")
        self.entry = _as_int_array(self.entry, n, -1, "entry")
        if self.entry is not None and np.all(self.entry == -1):
            self.entry = np.arange(n, dtype=np.int64)
        self.source_files = tuple(str(s) for s in self.source_files)
        self.extra = {key: _extra_column(key, value, n) for key, value in self.extra.items()}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_p4(
        cls,
        px: Any,
        py: Any,
        pz: Any,
        energy: Any,
        *,
        fields: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> JetBatch:
        """Build from ragged (jets x particles) four-momentum components [GeV].

        ``fields`` adds optional particle fields of the same ragged shape; other keyword
        arguments (``label``, ``extra``, ``source_files``, ``source``, ``entry``) go to the
        constructor.
        """
        columns = {"px": px, "py": py, "pz": pz, "energy": energy, **(fields or {})}
        return cls(ak.zip({k: ak.Array(v) for k, v in columns.items()}), **kwargs)

    @classmethod
    def from_ptetaphi(
        cls,
        pt: Any,
        eta: Any,
        phi: Any,
        mass: Any = 0.0,
        *,
        fields: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> JetBatch:
        """Build from ragged (pt [GeV], eta, phi [rad], mass [GeV]) per particle."""
        pt, eta, phi = ak.Array(pt), ak.Array(eta), ak.Array(phi)
        px, py, pz, energy = kin.ptetaphim_to_p4(pt, eta, phi, mass)
        return cls.from_p4(px, py, pz, energy, fields=fields, **kwargs)

    @classmethod
    def from_padded(
        cls,
        values: np.ndarray,
        mask: np.ndarray,
        features: Sequence[str],
        **kwargs: Any,
    ) -> JetBatch:
        """Inverse of :meth:`to_padded` for stored (not derived) fields.

        ``features`` must contain ``px, py, pz, energy``; masked-out slots are dropped.
        """
        features = tuple(features)
        missing = [f for f in MOMENTUM_FIELDS if f not in features]
        if missing:
            raise JetDataError(f"from_padded needs the features {missing}")
        values = np.asarray(values)
        mask = np.asarray(mask, dtype=bool)
        if values.shape[:2] != mask.shape or values.shape[2] != len(features):
            raise JetDataError(
                f"values {values.shape} do not match mask {mask.shape} and {len(features)} "
                "features"
            )
        counts = mask.sum(axis=1)
        if np.any(np.diff(mask.astype(np.int8), axis=1) > 0):
            raise JetDataError("mask must be left-aligned (real particles first)")
        flat = values[mask]
        columns = {
            name: ak.unflatten(flat[:, i], counts) for i, name in enumerate(features)
        }
        return cls(ak.zip(columns), **kwargs)

    # ------------------------------------------------------------------ basic access
    def __len__(self) -> int:
        return len(self.particles)

    @property
    def n_jets(self) -> int:
        return len(self.particles)

    @property
    def fields(self) -> tuple[str, ...]:
        """Stored particle fields."""
        return tuple(self.particles.fields)

    def __getitem__(self, index: Any) -> JetBatch:
        """Jet subset by slice, integer array or boolean mask (always a new batch)."""
        if isinstance(index, int | np.integer):
            index = slice(int(index), int(index) + 1) if index != -1 else slice(-1, None)
        if isinstance(index, slice):
            idx = np.arange(len(self))[index]
        else:
            idx = np.asarray(index)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} jets")
                idx = np.flatnonzero(idx)
        return JetBatch(
            particles=self.particles[idx],
            label=self.label[idx],
            extra={k: v[idx] for k, v in self.extra.items()},
            source_files=self.source_files,
            source=self.source[idx],
            entry=self.entry[idx],
        )

    @staticmethod
    def concatenate(batches: Sequence[JetBatch]) -> JetBatch:
        """Join batches; provenance tables are merged. Extras must agree in keys."""
        if not batches:
            raise ValueError("concatenate needs at least one batch")
        keys = set(batches[0].extra)
        if any(set(b.extra) != keys for b in batches):
            raise JetDataError("cannot concatenate batches with different extra columns")
        fields_ = set(batches[0].fields)
        if any(set(b.fields) != fields_ for b in batches):
            raise JetDataError("cannot concatenate batches with different particle fields")
        files: list[str] = []
        sources = []
        for b in batches:
            remap = []
            for f in b.source_files:
                if f not in files:
                    files.append(f)
                remap.append(files.index(f))
            remap_arr = np.asarray(remap + [-1], dtype=np.int64)
            sources.append(remap_arr[b.source])  # -1 maps to the trailing -1
        order = list(batches[0].fields)
        return JetBatch(
            particles=ak.concatenate([b.particles[order] for b in batches]),
            label=np.concatenate([b.label for b in batches]),
            extra={k: _concatenate_extra([b.extra[k] for b in batches]) for k in keys},
            source_files=tuple(files),
            source=np.concatenate(sources),
            entry=np.concatenate([b.entry for b in batches]),
        )

    def class_counts(self) -> dict[str, int]:
        """Number of jets per class name (``unlabelled`` for -1)."""
        values, counts = np.unique(self.label, return_counts=True)
        return {class_name(int(v)): int(c) for v, c in zip(values, counts, strict=True)}

    def source_of(self, i: int) -> str:
        """'file:entry' provenance string of jet ``i``."""
        src = self.source[i]
        name = self.source_files[src] if src >= 0 else "<memory>"
        return f"{name}:{self.entry[i]}"

    # ------------------------------------------------------------------ particle kinematics
    def _p(self, name: str) -> ak.Array:
        return ak.values_astype(self.particles[name], np.float64)

    @property
    def n_particles(self) -> np.ndarray:
        """Constituents per jet, (n_jets,) int64."""
        return ak.to_numpy(ak.num(self.particles, axis=1)).astype(np.int64)

    @property
    def pt(self) -> ak.Array:
        return kin.pt(self._p("px"), self._p("py"))

    @property
    def eta(self) -> ak.Array:
        return kin.eta(self._p("px"), self._p("py"), self._p("pz"))

    @property
    def phi(self) -> ak.Array:
        return kin.phi(self._p("px"), self._p("py"))

    @property
    def mass(self) -> ak.Array:
        return kin.mass(self._p("energy"), self._p("px"), self._p("py"), self._p("pz"))

    @property
    def log_pt(self) -> ak.Array:
        """log(pT / GeV); -inf for pT = 0 particles, which the preprocessing
        (:mod:`jetfm.data.transforms`) drops and counts before any model sees them."""
        return np.log(self.pt)

    @property
    def log_energy(self) -> ak.Array:
        return np.log(self._p("energy"))

    @property
    def eta_rel(self) -> ak.Array:
        """eta - jet_eta (JetClass ``part_deta``)."""
        return self.eta - self.jet_eta

    @property
    def phi_rel(self) -> ak.Array:
        """phi - jet_phi wrapped into (-pi, pi] (JetClass ``part_dphi``)."""
        return kin.delta_phi(self.phi, self.jet_phi)

    @property
    def delta_r(self) -> ak.Array:
        """Angular distance to the jet axis."""
        return np.hypot(self.eta_rel, self.phi_rel)

    @property
    def pt_rel(self) -> ak.Array:
        """pt / jet_pt."""
        return self.pt / self.jet_pt

    @property
    def energy_rel(self) -> ak.Array:
        """E / jet_energy."""
        return self._p("energy") / self.jet_energy

    @property
    def log_pt_rel(self) -> ak.Array:
        return np.log(self.pt_rel)

    @property
    def log_energy_rel(self) -> ak.Array:
        return np.log(self.energy_rel)

    def particle_feature(self, name: str) -> ak.Array:
        """A stored field or a derived feature (see :data:`DERIVED_PARTICLE_FEATURES`)."""
        if name in self.particles.fields:
            return self.particles[name]
        if name in DERIVED_PARTICLE_FEATURES:
            return getattr(self, name)
        raise KeyError(
            f"unknown particle feature {name!r}; stored: {list(self.fields)}, "
            f"derived: {list(DERIVED_PARTICLE_FEATURES)}"
        )

    # ------------------------------------------------------------------ jet kinematics
    def _jet_sum(self, name: str) -> np.ndarray:
        return ak.to_numpy(ak.sum(self._p(name), axis=1)).astype(np.float64)

    @property
    def jet_p4(self) -> np.ndarray:
        """(n_jets, 4) E-scheme sum of constituents: px, py, pz, E [GeV]."""
        return np.stack([self._jet_sum(f) for f in MOMENTUM_FIELDS], axis=1)

    @property
    def jet_pt(self) -> np.ndarray:
        return kin.pt(self._jet_sum("px"), self._jet_sum("py"))

    @property
    def jet_eta(self) -> np.ndarray:
        return kin.eta(self._jet_sum("px"), self._jet_sum("py"), self._jet_sum("pz"))

    @property
    def jet_phi(self) -> np.ndarray:
        return kin.phi(self._jet_sum("px"), self._jet_sum("py"))

    @property
    def jet_energy(self) -> np.ndarray:
        return self._jet_sum("energy")

    @property
    def jet_mass(self) -> np.ndarray:
        p = self.jet_p4
        return kin.mass(p[:, 3], p[:, 0], p[:, 1], p[:, 2])

    # ------------------------------------------------------------------ ordering, views
    def sort_by_pt(self) -> JetBatch:
        """Constituents in descending pT inside each jet (stable)."""
        order = ak.argsort(self.pt, axis=1, ascending=False, stable=True)
        out = self[:]
        out.particles = self.particles[order]
        return out

    def truncate(self, n_max: int) -> tuple[JetBatch, int]:
        """Keep the ``n_max`` hardest constituents per jet.

        Returns the new batch and the number of particles dropped. Jet kinematics of the
        result are recomputed from the kept constituents.
        """
        if n_max < 1:
            raise ValueError(f"n_max must be >= 1, got {n_max}")
        ordered = self.sort_by_pt()
        n_dropped = int(np.sum(np.maximum(self.n_particles - n_max, 0)))
        ordered.particles = ordered.particles[:, :n_max]
        return ordered, n_dropped

    def to_padded(
        self,
        features: Sequence[str] = ("px", "py", "pz", "energy"),
        n_max: int | None = None,
        *,
        sort: bool = True,
        dtype: Any = np.float32,
    ) -> Padded:
        """Zero-padded (n_jets, n_max, n_features) view with mask.

        With ``sort`` the constituents are pT-ordered first, so truncation drops the softest;
        the number dropped is reported in ``Padded.n_truncated``. ``n_max`` defaults to the
        largest multiplicity.
        """
        batch = self.sort_by_pt() if sort else self
        counts = batch.n_particles
        if n_max is None:
            n_max = int(counts.max(initial=0))
        n_truncated = int(np.sum(np.maximum(counts - n_max, 0)))
        values = np.zeros((len(batch), n_max, len(features)), dtype=dtype)
        for i, name in enumerate(features):
            column = batch.particle_feature(name)[:, :n_max]
            column = ak.fill_none(ak.pad_none(column, n_max, axis=1, clip=True), 0)
            values[..., i] = ak.to_numpy(column)
        mask = np.arange(n_max)[None, :] < np.minimum(counts, n_max)[:, None]
        return Padded(values, mask, tuple(features), n_truncated)

    # ------------------------------------------------------------------ validation
    def problems(self) -> dict[str, np.ndarray]:
        """Per-jet boolean flags of invalid content, keyed by problem description."""
        flags: dict[str, np.ndarray] = {}
        for name in self.fields:
            column = self.particles[name]
            # an empty column of unknown type (ak.Array([[]])) has no dtype: numpy's is float
            if np.issubdtype(ak.to_numpy(ak.flatten(column, axis=None)).dtype, np.floating):
                bad = ak.to_numpy(ak.any(~np.isfinite(column), axis=1))
                flags[f"non-finite {name}"] = bad
        flags["negative energy"] = ak.to_numpy(ak.any(self.particles["energy"] < 0, axis=1))
        flags["zero particles"] = self.n_particles == 0
        # a jet of pT = 0 particles only has no axis: pt_rel, eta_rel, tau_N would be 0 / 0
        has_pt = ak.to_numpy(ak.any(self.pt > 0, axis=1)) if len(self) else np.zeros(0, bool)
        flags["no particle with pT > 0"] = ~has_pt & (self.n_particles > 0)
        return flags

    def check(self, origin: str = "<memory>") -> JetBatch:
        """Raise :class:`JetDataError` naming ``origin`` and the first bad jet, if any."""
        for problem, bad in self.problems().items():
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise JetDataError(
                    f"{origin}: {int(bad.sum())} jet(s) with {problem} "
                    f"(first: jet {first}, {self.source_of(first)}); {SKIP_INVALID_HINT}"
                )
        return self

    def drop_invalid(self, origin: str = "<memory>") -> tuple[JetBatch, SelectionReport]:
        """Remove jets with any problem; the report counts jets per problem."""
        flags = self.problems()
        bad = np.zeros(len(self), dtype=bool)
        for value in flags.values():
            bad |= value
        report = SelectionReport(
            f"{origin}: invalid jets",
            len(self),
            int((~bad).sum()),
            {k: int(v.sum()) for k, v in flags.items()},
        )
        return self[~bad], report

