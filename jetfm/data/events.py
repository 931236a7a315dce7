"""Event-level data: pp -> Z(mu mu) + jets events as pT-ordered objects (Spinner thesis ch. 5).

An :class:`Events` holds, per event, the two muons and up to ``J`` jets, each object as
``(pT [GeV], eta, phi [rad], m [GeV])`` (:data:`COLUMNS`), both pT-descending; jet rows
beyond an event's ``n_jets`` are exactly zero (padding). This is the event representation of
the thesis' Z + jets dataset (Sec. 5.1.2, Eq. 5.11: "the muons and jets are both ordered in
transverse momentum", each object in standard jet coordinates ``(pT, eta, phi, m)``).

Files: HDF5 (:func:`write_events`, :func:`read_events`) with the datasets ``muons``
(N, 2, 4), ``jets`` (N, J, 4) (float64, gzip-compressed) and ``n_jets`` (N,) int64, the
attribute ``format = "jetfm.events"``, ``version``, ``columns`` and ``meta`` (the provenance
as JSON: generator configuration, seed, what each cut removed). Written atomically
(:mod:`jetfm.atomic`): a file under its final name is complete.

Selections keep the event order and append what they did to ``meta["history"]``:
:func:`select_max_jets` (events with at most ``n_max`` jets) and
:func:`cap_low_multiplicities` (thesis Sec. 5.1.2 / Tab. 5.1: "we cap the number of events
with n = 0, 1, 2 to match the number of events with n = 3").
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jetfm.atomic import atomic_path

#: Muon mass [GeV]: PDG 2024, m_mu = 105.6583755(23) MeV.
MUON_MASS: float = 0.1056583755
#: The four columns of every object, in order.
COLUMNS: tuple[str, ...] = ("pt", "eta", "phi", "m")
FORMAT = "jetfm.events"
VERSION = 1
_KEYS = ("muons", "jets", "n_jets")
_PT, _ETA, _PHI, _M = range(4)


@dataclass
class Events:
    """pp -> Z(mu mu) + jets events as pT-ordered objects.

    ``muons``: (N, 2, 4) float64 columns ``pt`` [GeV], ``eta``, ``phi`` [rad, in [-pi, pi)],
    ``m`` [GeV] (:data:`COLUMNS`), pT-descending. ``jets``: (N, J, 4), the same columns,
    pT-descending in the first ``n_jets`` rows; rows ``>= n_jets`` exactly 0. ``n_jets``: (N,)
    int64, ``0 <= n_jets <= J``. ``meta``: JSON-able provenance (generator configuration,
    seed, cut counts, ``history`` of selections).

    Checked on construction (``ValueError`` naming the array and what is wrong): shapes,
    numeric real values (converted to float64 / int64), finite kinematics, pT > 0 for real
    jets and >= 0 for muons, m >= 0, |phi| <= pi (``phi = +pi`` is stored as ``-pi``), pT
    ordering and zero padding.
    """

    muons: np.ndarray
    jets: np.ndarray
    n_jets: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.muons = _float_array(self.muons, "muons")
        self.jets = _float_array(self.jets, "jets")
        self.n_jets = _int_array(self.n_jets, "n_jets")
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be a dict, got {type(self.meta).__name__}")
        n = len(self.muons)
        if self.muons.ndim != 3 or self.muons.shape[1:] != (2, 4):
            raise ValueError(f"muons: shape {self.muons.shape}, expected (N, 2, 4)")
        if self.jets.ndim != 3 or self.jets.shape[2] != 4 or len(self.jets) != n:
            raise ValueError(f"jets: shape {self.jets.shape}, expected (N, J, 4) with N = {n} "
                             "(the muons' N)")
        if self.n_jets.shape != (n,):
            raise ValueError(f"n_jets: shape {self.n_jets.shape}, expected ({n},)")
        n_max = self.jets.shape[1]
        bad = (self.n_jets < 0) | (self.n_jets > n_max)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"n_jets: {int(bad.sum())} event(s) outside 0 ... J = {n_max} "
                             f"(first: event {i} has n_jets = {int(self.n_jets[i])})")
        real = np.arange(n_max)[None, :] < self.n_jets[:, None]
        if (self.jets[~real] != 0).any():
            i = int(np.flatnonzero(((self.jets != 0).any(axis=2) & ~real).any(axis=1))[0])
            raise ValueError(f"jets: padding rows (>= n_jets) must be exactly 0; event {i} "
                             f"(n_jets = {int(self.n_jets[i])}) has a non-zero one")
        _check_objects("muons", self.muons, np.ones(self.muons.shape[:2], dtype=bool), 0.0)
        _check_objects("jets", self.jets, real, None)

    def __len__(self) -> int:
        return len(self.n_jets)

    def __getitem__(self, index: Any) -> Events:
        """The events at ``index``: a bool mask (N,), an integer array, a slice or an integer
        (a one-event :class:`Events`); padding and ``meta`` (a copy) are kept."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool and index.shape != (len(self),):
                raise ValueError(f"bool mask of shape {index.shape} for {len(self)} events")
            if index.dtype != bool and not np.issubdtype(index.dtype, np.integer):
                if index.size:
                    raise ValueError(f"index must be a bool mask, integers or a slice, got "
                                     f"dtype {index.dtype}")
                index = index.astype(np.int64)
        return Events(self.muons[index], self.jets[index], self.n_jets[index],
                      copy.deepcopy(self.meta))

    @property
    def max_jets(self) -> int:
        """J: the jet slots per event."""
        return int(self.jets.shape[1])

    def objects(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2 + J, 4) muons then jets (copy), and the (N, 2 + J) bool mask of real objects
        (muons always, jets below ``n_jets``)."""
        values = np.concatenate([self.muons, self.jets], axis=1)
        mask = np.concatenate([np.ones((len(self), 2), dtype=bool),
                               np.arange(self.max_jets)[None, :] < self.n_jets[:, None]], axis=1)
        return values, mask

    def multiplicity_counts(self, n_max: int | None = None) -> np.ndarray:
        """Exclusive event counts (n_max + 1,) int64 for n_jets = 0 ... n_max (default J);
        events with more than ``n_max`` jets are not in it. ``ValueError`` if n_max < 0."""
        n_max = self.max_jets if n_max is None else int(n_max)
        if n_max < 0:
            raise ValueError(f"n_max must be >= 0, got {n_max}")
        kept = self.n_jets[self.n_jets <= n_max]
        return np.bincount(kept, minlength=n_max + 1).astype(np.int64)


def _float_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.floating)
                                   or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name}: dtype {array.dtype}, expected real numbers (float64)")
    return np.array(array, dtype=np.float64)  # a copy: Events owns its arrays


def _int_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        if array.size and not (np.issubdtype(array.dtype, np.floating)
                               and np.all(np.isfinite(array)) and np.all(array == np.round(array))):
            raise ValueError(f"{name}: dtype {array.dtype}, expected integers (int64)")
    return np.array(array, dtype=np.int64)


def _check_objects(name: str, values: np.ndarray, real: np.ndarray,
                   pt_floor: float | None) -> None:
    """Finite columns, pT (> 0 or >= pt_floor), m >= 0, |phi| <= pi (+pi -> -pi, in place),
    pT-descending along axis 1 among the ``real`` rows (left-aligned)."""
    objects = values[real]  # (n_objects, 4)
    if not np.isfinite(objects).all():
        row = np.flatnonzero(~np.isfinite(objects).all(axis=1))[0]
        event = int(np.nonzero(real)[0][row])
        raise ValueError(f"{name}: non-finite kinematics (NaN or inf) in "
                         f"{int((~np.isfinite(objects).all(axis=1)).sum())} object(s), "
                         f"first in event {event}")
    pt_ok = objects[:, _PT] > 0 if pt_floor is None else objects[:, _PT] >= pt_floor
    checks = (("pt", pt_ok, "pT > 0" if pt_floor is None else f"pT >= {pt_floor:g}"),
              ("m", objects[:, _M] >= 0, "m >= 0"),
              ("phi", np.abs(objects[:, _PHI]) <= math.pi, "phi in [-pi, pi)"))
    for column, ok, rule in checks:
        if not ok.all():
            event = int(np.nonzero(real)[0][np.flatnonzero(~ok)[0]])
            raise ValueError(f"{name}: {column} breaks {rule} in {int((~ok).sum())} object(s), "
                             f"first in event {event}")
    phi = values[..., _PHI]
    phi[real & (phi == math.pi)] = -math.pi
    pt = values[..., _PT]
    rising = (pt[:, 1:] > pt[:, :-1]) & real[:, 1:]
    if rising.any():
        event = int(np.flatnonzero(rising.any(axis=1))[0])
        raise ValueError(f"{name}: not pT-descending in {int(rising.any(axis=1).sum())} "
                         f"event(s), first event {event}: pT {pt[event][real[event]].tolist()}")


# ----------------------------------------------------------------------------- combining
def concatenate_events(parts: Sequence[Events]) -> Events:
    """The events of ``parts`` in order; jets zero-padded to the largest J. ``meta``: the
    common one if all parts have the same, else ``{"concatenated": [meta of each part]}``.
    ``ValueError`` for no parts."""
    parts = list(parts)
    if not parts:
        raise ValueError("concatenate_events: no parts")
    width = max(p.max_jets for p in parts)
    jets = [np.pad(p.jets, ((0, 0), (0, width - p.max_jets), (0, 0))) for p in parts]
    metas = [p.meta for p in parts]
    meta = (copy.deepcopy(metas[0]) if all(m == metas[0] for m in metas)
            else {"concatenated": copy.deepcopy(metas)})
    return Events(np.concatenate([p.muons for p in parts]), np.concatenate(jets),
                  np.concatenate([p.n_jets for p in parts]), meta)


# ----------------------------------------------------------------------------- files
def write_events(events: Events, path: str | os.PathLike[str]) -> Path:
    """Write ``events`` to the HDF5 file ``path`` (module docstring) atomically; returns it.

    ``ValueError`` if ``meta`` is not JSON-serialisable (nothing is written)."""
    path = Path(path)
    try:
        meta = json.dumps(events.meta, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: meta is not JSON-serialisable ({err})") from err
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as file:
        file.attrs["format"] = FORMAT
        file.attrs["version"] = VERSION
        file.attrs["columns"] = ",".join(COLUMNS)
        file.attrs["meta"] = meta
        for key in ("muons", "jets"):
            values = getattr(events, key)
            compress = {"compression": "gzip", "compression_opts": 4, "shuffle": True,
                        "chunks": (min(max(len(values), 1), 16384), *values.shape[1:])}
            file.create_dataset(key, data=values, **(compress if values.size else {}))
        file.create_dataset("n_jets", data=events.n_jets)
    return path


def is_events_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an HDF5 file written by :func:`write_events` (False for anything
    else, including a missing or unreadable file)."""
    try:
        with h5py.File(path, "r") as file:
            return file.attrs.get("format") == FORMAT
    except (OSError, ValueError):
        return False


def read_events(path: str | os.PathLike[str]) -> Events:
    """The :class:`Events` of a file written by :func:`write_events`.

    ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file (and the key) for
    a file that is not HDF5 or not a jetfm events file, a missing key, a wrong shape or dtype,
    unreadable ``meta`` JSON, non-finite kinematics, ``n_jets`` outside 0 ... J, broken pT
    ordering or padding."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no events file {path}")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a jetfm events file (HDF5)")
    try:
        file = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
    with file:
        if file.attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: not a jetfm events file (attribute 'format' is "
                             f"{file.attrs.get('format')!r}, expected {FORMAT!r})")
        arrays = {}
        for key in _KEYS:
            if key not in file:
                raise ValueError(f"{path}: missing key {key!r} (a jetfm events file has "
                                 f"{list(_KEYS)})")
            if not isinstance(file[key], h5py.Dataset):
                raise ValueError(f"{path}: key {key!r} is not a dataset")
            try:
                arrays[key] = file[key][()]
            except OSError as err:
                raise ValueError(f"{path}: key {key!r} cannot be read ({err})") from err
        try:
            meta = json.loads(file.attrs.get("meta", "{}"))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: attribute 'meta' is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: attribute 'meta' is not a JSON object")
    try:
        return Events(arrays["muons"], arrays["jets"], arrays["n_jets"], meta)
    except ValueError as err:  # the message starts with the key
        raise ValueError(f"{path}: {err}") from err


# ----------------------------------------------------------------------------- selections
def _with_history(events: Events, step: dict[str, Any]) -> Events:
    events.meta = {**events.meta, "history": [*events.meta.get("history", []), step]}
    return events


def select_max_jets(events: Events, n_max: int) -> tuple[Events, int]:
    """Keep the events with ``n_jets <= n_max`` (order kept) and trim the jet slots to
    ``min(J, n_max)`` (the dropped slots are padding of every kept event); returns them and the
    number of events removed. ``ValueError`` if ``n_max < 0``."""
    if int(n_max) != n_max or n_max < 0:
        raise ValueError(f"n_max must be an integer >= 0, got {n_max}")
    n_max = int(n_max)
    keep = events.n_jets <= n_max
    kept = events[keep]
    kept = Events(kept.muons, kept.jets[:, :n_max], kept.n_jets, kept.meta)
    removed = int(len(events) - keep.sum())
    return _with_history(kept, {"select_max_jets": n_max, "removed": removed}), removed


def cap_low_multiplicities(events: Events, cap_below: int = 3,
                           seed: int = 0) -> tuple[Events, dict[int, int]]:
    """Cap the events of each multiplicity ``n < cap_below`` at the number with
    ``n == cap_below`` (thesis Sec. 5.1.2, Tab. 5.1: n = 0, 1, 2 capped to the 3-jet count).

    The kept events of a capped multiplicity are a uniform random subset
    (``numpy.random.default_rng(seed)``, multiplicities in increasing order), in their original
    order. Returns the events and the removed count per ``n`` in ``0 ... cap_below - 1``.
    ``ValueError`` if ``cap_below < 0`` or if some ``n < cap_below`` has events but none has
    ``n == cap_below`` (the cap would remove them all)."""
    if int(cap_below) != cap_below or cap_below < 0:
        raise ValueError(f"cap_below must be an integer >= 0, got {cap_below}")
    cap_below = int(cap_below)
    cap = int(np.count_nonzero(events.n_jets == cap_below))
    if cap == 0 and np.any(events.n_jets < cap_below):
        raise ValueError(f"cap_low_multiplicities: no event with {cap_below} jets, so the cap "
                         f"would remove every event with fewer jets")
    rng = np.random.default_rng(seed)
    keep = np.ones(len(events), dtype=bool)
    removed: dict[int, int] = {}
    for n in range(cap_below):
        members = np.flatnonzero(events.n_jets == n)
        removed[n] = max(len(members) - cap, 0)
        if removed[n]:
            drop = rng.choice(members, size=removed[n], replace=False)
            keep[drop] = False
    step = {"cap_low_multiplicities": {"cap_below": cap_below, "cap": cap, "seed": seed},
            "removed": {str(n): k for n, k in removed.items()}}
    return _with_history(events[keep], step), removed
