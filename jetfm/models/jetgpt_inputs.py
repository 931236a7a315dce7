"""JetGPT's event representation: Z -> mu mu + jets events <-> standardised object sequences.

Thesis (Spinner, Sec. 5.1.2, Eq. (5.11)): each object is ``(pT, eta, phi, m)``; jets enter as
``log(pT - pT_min)`` with ``pT_min`` the jet cut (20 GeV), which maps the allowed range to the
real line, masses as ``log m``, angles ``phi`` relative to the leading muon, and every variable
except ``phi`` is standardised ``(x - mean) / std``. The components are generated in the order
of Eq. (5.17): ``(log_pt, phi, eta, log_m)``.

The sequence is ``mu_1, mu_2, j_1 .. j_n`` (both pT-ordered), three object types: the leading
muon (its ``phi`` is 0 by definition and its mass is fixed: neither is generated), the second
muon (mass fixed) and jets. Muons have no pT cut here, so their ``log_pt`` is ``log pT``.
Jet masses below ``mass_floor`` (single-particle jets) are raised to it before the log
(counted by :meth:`EventPreprocessing.encode`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jetfm.data.events import MUON_MASS, Events
from jetfm.physics.kinematics import wrap_phi

EVENT_COMPONENTS = ("log_pt", "phi", "eta", "log_m")
LEADING_MUON, SECOND_MUON, JET = 0, 1, 2
#: :class:`jetfm.models.jetgpt.JetGPTConfig` fields that describe this representation.
EVENT_MODEL_FIELDS: dict[str, Any] = {
    "components": EVENT_COMPONENTS, "periodic": ("phi",), "n_types": 3,
    "fixed_types": (LEADING_MUON, SECOND_MUON), "free_type": JET,
    "given": (("phi", "log_m"), ("log_m",), ()),
}
_PHI = EVENT_COMPONENTS.index("phi")


@dataclass
class EventPreprocessing:
    """The map between :class:`~jetfm.data.events.Events` and JetGPT sequences.

    ``jet_pt_min`` [GeV]: the jet cut in ``log(pT - pT_min)`` (thesis Eq. (5.10)/(5.11));
    ``mass_floor`` [GeV]: smallest jet mass before ``log m``; ``mean``/``std`` (3 types x 4
    components) from :meth:`fit` on the training events (``phi`` and the components that are
    not generated keep mean 0, std 1).
    """

    jet_pt_min: float = 20.0
    mass_floor: float = 0.01
    mean: list[list[float]] = field(default_factory=lambda: np.zeros((3, 4)).tolist())
    std: list[list[float]] = field(default_factory=lambda: np.ones((3, 4)).tolist())

    def __post_init__(self) -> None:
        """``ValueError`` for a negative cut, a floor <= 0, or mean/std not 3 x 4 finite
        (std > 0)."""
        if not (np.isfinite(self.jet_pt_min) and self.jet_pt_min >= 0):
            raise ValueError(f"jet_pt_min must be >= 0 GeV, got {self.jet_pt_min}")
        if not (np.isfinite(self.mass_floor) and self.mass_floor > 0):
            raise ValueError(f"mass_floor must be > 0 GeV, got {self.mass_floor}")
        mean, std = np.asarray(self.mean, float), np.asarray(self.std, float)
        if mean.shape != (3, 4) or std.shape != (3, 4) or not np.isfinite(mean).all() \
                or not (np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("mean and std must be finite 3 x 4 tables (std > 0)")

    # ------------------------------------------------------------------ raw variables
    def raw(self, events: Events) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unstandardised sequences ``(N, 2 + J, 4)`` (log_pt, phi_rel, eta, log_m), the
        mask (N, 2 + J) and the type of each position (2 + J,). ``ValueError`` if a jet is
        not above ``jet_pt_min``."""
        objects, mask = events.objects()
        pt, eta, phi, m = (objects[..., i] for i in range(4))
        types = np.r_[LEADING_MUON, SECOND_MUON, np.full(objects.shape[1] - 2, JET)]
        cut = np.where(types == JET, self.jet_pt_min, 0.0)[None]
        low = mask & (pt <= cut)
        if low.any():
            raise ValueError(f"{int(low.sum())} objects at or below their pT cut "
                             f"(jets: {self.jet_pt_min} GeV); select the events first")
        with np.errstate(divide="ignore", invalid="ignore"):
            log_pt = np.log(np.where(mask, pt - cut, 1.0))
            log_m = np.log(np.maximum(np.where(mask, m, 1.0), self.mass_floor))
        phi_rel = wrap_phi(phi - phi[:, :1])
        raw = np.stack([log_pt, phi_rel, eta, log_m], axis=-1)
        raw[:, :2, 3] = 0.0  # muon masses are fixed
        raw[:, 0, _PHI] = 0.0  # the leading muon defines phi = 0
        return np.where(mask[..., None], raw, 0.0), mask, types

    @classmethod
    def fit(cls, events: Events, jet_pt_min: float = 20.0, mass_floor: float = 0.01
            ) -> EventPreprocessing:
        """Means and standard deviations per object type of the training ``events``
        (``ValueError`` for no events)."""
        if len(events) == 0:
            raise ValueError("EventPreprocessing.fit: no events")
        prep = cls(jet_pt_min, mass_floor)
        raw, mask, types = prep.raw(events)
        mean, std = np.zeros((3, 4)), np.ones((3, 4))
        given = _given_table()
        for t in range(3):
            values = raw[:, types == t][mask[:, types == t]]
            if len(values) < 2:
                continue
            for c in range(4):
                if c != _PHI and not given[t, c]:
                    mean[t, c] = values[:, c].mean()
                    std[t, c] = max(values[:, c].std(), 1e-6)
        prep.mean, prep.std = mean.tolist(), std.tolist()
        return prep

    # ------------------------------------------------------------------ encode / decode
    def encode(self, events: Events) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Standardised sequences (N, 2 + J, 4) float32, mask (N, 2 + J) bool and a report
        ``{"jets raised to the mass floor": k}``."""
        raw, mask, types = self.raw(events)
        objects, _ = events.objects()
        floored = int((mask[:, 2:] & (objects[:, 2:, 3] < self.mass_floor)).sum())
        mean, std = np.asarray(self.mean)[types], np.asarray(self.std)[types]
        x = np.where(mask[..., None], (raw - mean[None]) / std[None], 0.0)
        return x.astype(np.float32), mask, {"jets raised to the mass floor": floored}

    def decode(self, x: np.ndarray, mask: np.ndarray, meta: dict[str, Any] | None = None,
               rng: np.random.Generator | None = None) -> Events:
        """Events from standardised sequences (N, T >= 2, 4) and their mask: the inverse of
        :meth:`encode`, with the leading muon at ``phi = 0`` (or at a uniform random azimuth
        with ``rng``: the model is azimuthally symmetric), muon masses ``MUON_MASS`` and both
        muons and jets re-ordered in pT. ``ValueError`` if a sequence has fewer than the two
        muons or non-finite values."""
        x, mask = np.asarray(x, float), np.asarray(mask, bool)
        if x.ndim != 3 or x.shape[2] != 4 or mask.shape != x.shape[:2] or x.shape[1] < 2:
            raise ValueError(f"decode: x {x.shape} and mask {mask.shape}, expected (N, T >= 2, "
                             "4) and (N, T)")
        if not mask[:, :2].all():
            raise ValueError("decode: every sequence needs its two muons")
        if not np.isfinite(x[mask]).all():
            raise ValueError("decode: non-finite generated values")
        types = np.r_[LEADING_MUON, SECOND_MUON, np.full(x.shape[1] - 2, JET)]
        raw = x * np.asarray(self.std)[types][None] + np.asarray(self.mean)[types][None]
        cut = np.where(types == JET, self.jet_pt_min, 0.0)[None]
        pt = np.exp(raw[..., 0]) + cut
        phi = raw[..., _PHI].copy()
        phi[:, 0] = 0.0
        if rng is not None:
            phi = phi + rng.uniform(-np.pi, np.pi, size=(len(x), 1))
        phi = wrap_phi(phi)
        m = np.where(types[None] == JET, np.exp(raw[..., 3]), MUON_MASS)
        objects = np.stack([pt, raw[..., 2], phi, m], axis=-1)
        objects = np.where(mask[..., None], objects, 0.0)
        muons = _pt_sorted(objects[:, :2], mask[:, :2])
        jets = _pt_sorted(objects[:, 2:], mask[:, 2:])
        return Events(muons=muons, jets=jets, n_jets=mask[:, 2:].sum(axis=1).astype(np.int64),
                      meta=dict(meta or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"jet_pt_min": self.jet_pt_min, "mass_floor": self.mass_floor,
                "mean": self.mean, "std": self.std}


def _given_table() -> np.ndarray:
    given = np.zeros((3, 4), dtype=bool)
    for t, names in enumerate(EVENT_MODEL_FIELDS["given"]):
        for name in names:
            given[t, EVENT_COMPONENTS.index(name)] = True
    return given


def _pt_sorted(objects: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Objects (N, K, 4) sorted by pT (column 0) descending, padding (mask False) last."""
    key = np.where(mask, -objects[..., 0], np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(objects, order[..., None], axis=1)
