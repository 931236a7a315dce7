"""Awkward inputs in every supported file format (a helper module for tests, not a test).

:func:`write_awkward_files` writes, with independent code in each real layout (uproot TTree,
h5py, pandas HDF5, numpy npz; jetfm's own Parquet through its table builder), files holding
the cases a physicist's file can hold: no jets; jets of 1, 2 and 3 particles; zero-pT and null
particles; optional branches or columns jagged, scalar, fixed-size, of an unusable layout or
missing; NaN and inf momenta. :data:`EXPECTED` says for each key what reading it must give:

* ``"ok"``: a :class:`~jetfm.data.JetBatch` of :data:`N_JETS` [key] jets;
* ``"empty"``: a batch of 0 jets;
* ``"error"``: a :class:`~jetfm.data.JetDataError` whose message names the file (and, with
  ``skip_invalid=True``, a batch without the bad jets).

Keys are ``"<format>/<case>"`` (``"jetclass/zero_jets"``, ``"aspen/nan_momenta"``, ...).
Import it as the other helpers: ``from awkward_files import write_awkward_files, EXPECTED``.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import uproot

from jetfm.data import JetBatch
from jetfm.data.classes import JETCLASS_LABEL_BRANCHES
from jetfm.data.parquet import parquet_table, write_parquet

# The jet of issue 11: massless particles of pT 310/140/55/12 GeV, eta 0.20/0.42/0.05/0.31,
# phi 1.10/1.32/0.90/1.25, as (px, py, pz, E) [GeV].
_PT = np.array([310.0, 140.0, 55.0, 12.0])
_ETA = np.array([0.20, 0.42, 0.05, 0.31])
_PHI = np.array([1.10, 1.32, 0.90, 1.25])
ISSUE_JET = np.stack(
    [_PT * np.cos(_PHI), _PT * np.sin(_PHI), _PT * np.sinh(_ETA), _PT * np.cosh(_ETA)], axis=1
)
ZERO_PT = np.array([0.0, 0.0, 0.5, 0.5])  # along the beam: pT = 0, E = 0.5 GeV
NULL = np.zeros(4)  # (0, 0, 0, 0)

# Jets as lists of (px, py, pz, E) rows.
SMALL = [ISSUE_JET[:1], ISSUE_JET[:2], ISSUE_JET[:3]]  # 1, 2 and 3 particles
SOFT = [
    np.vstack([ISSUE_JET, ZERO_PT]),  # the issue's jet plus a zero-pT particle
    np.vstack([ISSUE_JET[:1], NULL, ISSUE_JET[1:]]),  # a null particle inside the jet
    np.vstack([ISSUE_JET[:2], ZERO_PT, NULL, ISSUE_JET[2:]]),  # both
]


def _poisoned(value: float, column: int) -> list[np.ndarray]:
    """SMALL with ``value`` put into one momentum component of the second jet."""
    jets = [j.copy() for j in SMALL]
    jets[1][1, column] = value
    return jets


NAN = _poisoned(np.nan, 0)  # px of particle 1 in jet 1
INF = _poisoned(np.inf, 3)  # energy of particle 1 in jet 1

_COMMON: dict[str, tuple[list[np.ndarray], str]] = {
    "zero_jets": ([], "empty"),
    "small_jets": (SMALL, "ok"),
    "zero_pt_and_null": (SOFT, "ok"),
    "nan_momenta": (NAN, "error"),
    "inf_momenta": (INF, "error"),
}


def _padded(jets: list[np.ndarray], n_slots: int, width: int) -> np.ndarray:
    out = np.zeros((len(jets), n_slots, width), np.float32)
    for i, j in enumerate(jets):
        out[i, : len(j), : j.shape[1]] = j
    return out


# ----------------------------------------------------------------------------- JetClass
def _jetclass(
    path: Path,
    jets: list[np.ndarray],
    *,
    labels: str = "all",
    jet_branches: bool = True,
    aux: str = "scalar",
    extra: dict | None = None,
) -> Path:
    """A JetClass TTree: part_* jagged, label_* (all, some or none), jet_* and aux_* branches."""
    n = len(jets)
    counts = np.array([len(j) for j in jets], dtype=np.int64)
    part = {
        name: ak.unflatten(
            np.concatenate([j[:, k] for j in jets]).astype(np.float32) if n else
            np.zeros(0, np.float32),
            counts,
        )
        for k, name in enumerate(("px", "py", "pz", "energy"))
    }
    if jet_branches:
        part["charge"] = ak.zeros_like(part["px"])
        part["isPhoton"] = ak.ones_like(part["px"])
    data: dict = {"part": ak.zip(part)}
    if labels == "all":
        data.update({b: np.zeros(n, bool) for b in JETCLASS_LABEL_BRANCHES})
        data["label_QCD"] = np.arange(n) % 2 == 0
        data["label_Tbqq"] = np.arange(n) % 2 == 1
    elif labels == "some":  # only QCD and Tbqq branches, every jet one of the two
        data.update({"label_QCD": np.arange(n) % 2 == 0, "label_Tbqq": np.arange(n) % 2 == 1})
    if jet_branches:
        data["jet_pt"] = np.array([np.hypot(*j[:, :2].sum(0)) for j in jets], np.float32)
        data["jet_nparticles"] = counts.astype(np.float32)
        data["jet_sdmass"] = np.full(n, 10.0, np.float32)
    rng = np.random.default_rng(3)
    if aux == "scalar":
        data["aux_genpart_pt"] = np.full(n, 500.0, np.float32)
        data["aux_truth_match"] = np.ones(n, np.float32)
    elif aux == "jagged":  # 1-3 hard partons per jet, varying
        n_partons = (np.arange(n) % 3) + 1
        genpart = {
            "pt": ak.unflatten(rng.uniform(20, 400, n_partons.sum()).astype(np.float32),
                               n_partons),
            "eta": ak.unflatten(rng.normal(0, 1, n_partons.sum()).astype(np.float32), n_partons),
            "pid": ak.unflatten(np.full(n_partons.sum(), 21, np.int32), n_partons),
        }
        data["aux_genpart"] = ak.zip(genpart)  # branches aux_genpart_{pt,eta,pid}, counter
    data.update(extra or {})
    with uproot.recreate(path) as file:
        file.mktree("tree", data)
    return path


# ----------------------------------------------------------------------------- AspenOpenJets
def _aspen(path: Path, jets: list[np.ndarray], *, kinematics: bool = True) -> Path:
    """AOJ: PFCands (N, 150, 11) float32 [GeV, cm], jet_kinematics (N, 4)."""
    pf = _padded(jets, 150, 11)
    real = np.zeros(pf.shape[:2], bool)
    for i, j in enumerate(jets):
        real[i, : len(j)] = np.any(j != 0, axis=1)  # a null particle stays all zero
    pf[..., 4][real] = 0.0012  # d0 [cm]
    pf[..., 5][real] = 0.0003
    pf[..., 9][real] = 22  # photons
    pf[..., 10][real] = 1.0  # PUPPI weight
    with h5py.File(path, "w") as f:
        f["PFCands"] = pf
        if kinematics:
            f["jet_kinematics"] = np.tile(np.float32([500, 0.2, 1.1, 30]), (len(jets), 1))
    return path


# ----------------------------------------------------------------------------- JetNet
def _jetnet(path: Path, jets: list[np.ndarray], *, type_column: bool = False) -> Path:
    """JetNet: particle_features (N, 30, 4) = etarel, phirel, ptrel, mask; jet_features (N, 4)."""
    pf = np.zeros((len(jets), 30, 4), np.float32)
    jf = np.zeros((len(jets), 4), np.float32)
    for i, j in enumerate(jets):
        pt = np.hypot(j[:, 0], j[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.where(pt > 0, np.arcsinh(j[:, 2] / np.where(pt > 0, pt, 1)), 0.0)
        eta = np.where(np.isfinite(j).all(axis=1), eta, j.sum(axis=1))  # NaN/inf carried over
        jet_pt = np.nansum(pt[np.isfinite(pt)])
        pf[i, : len(j)] = np.stack(
            [eta - 0.2, np.arctan2(j[:, 1], j[:, 0]) - 1.1, pt / jet_pt, np.ones(len(j))], axis=1
        )
        jf[i] = [jet_pt, 0.2, 30.0, len(j)]
    if type_column:
        jf = np.concatenate([(np.arange(len(jets)) % 5)[:, None].astype(np.float32), jf], axis=1)
    with h5py.File(path, "w") as f:
        f["particle_features"] = pf
        f["jet_features"] = jf
    return path


# ----------------------------------------------------------------------------- top tagging
def _toptagging(path: Path, jets: list[np.ndarray], *, label: bool = True,
                truth: bool = True) -> Path:
    """Top tagging: pandas table ``table`` with E_i, PX_i, PY_i, PZ_i for 200 slots."""
    values = _padded(jets, 200, 4)
    columns = {}
    for i in range(200):
        for k, c in enumerate(("PX", "PY", "PZ", "E")):
            columns[f"{c}_{i}"] = values[:, i, k]
    if truth:
        for k, c in enumerate(("truthPX", "truthPY", "truthPZ", "truthE")):
            columns[c] = np.nan_to_num(values[..., k].sum(axis=1), posinf=0.0)
        columns["ttv"] = np.zeros(len(jets), np.int64)
    if label:
        columns["is_signal_new"] = np.arange(len(jets)) % 2
    pd.DataFrame(columns).to_hdf(path, key="table")
    return path


# ----------------------------------------------------------------------------- quark/gluon
def _quarkgluon(path: Path, jets: list[np.ndarray], *, label: bool = True) -> Path:
    """energyflow npz: X (N, M, 4) = pt, rapidity, phi, PDG id; y (N,)."""
    x = np.zeros((len(jets), 8, 4))
    for i, j in enumerate(jets):
        with np.errstate(divide="ignore", invalid="ignore"):
            pt = np.hypot(j[:, 0], j[:, 1])
            rap = 0.5 * np.log((j[:, 3] + j[:, 2]) / (j[:, 3] - j[:, 2]))
        rap[pt == 0] = 5.0  # pT = 0 along the beam: a large finite rapidity, as FastJet caps it
        rows = np.stack([pt, rap, np.arctan2(j[:, 1], j[:, 0]), np.full(len(j), 22.0)], axis=1)
        rows[~np.any(j != 0, axis=1)] = 0.0  # a null particle is an all-zero row
        rows[~np.isfinite(j).all(axis=1), 0] = j[~np.isfinite(j).all(axis=1)].sum(axis=1)
        x[i, : len(j)] = rows
    arrays = {"X": x}
    if label:
        arrays["y"] = np.arange(len(jets)) % 2
    np.savez(path, **arrays)
    return path


# ----------------------------------------------------------------------------- parquet
def _batch(jets: list[np.ndarray], extra: bool = False) -> JetBatch:
    counts = np.array([len(j) for j in jets], dtype=np.int64)
    flat = np.concatenate(jets) if jets else np.zeros((0, 4))
    columns = {f: ak.unflatten(flat[:, k], counts) for k, f in enumerate(("px", "py", "pz",
                                                                             "energy"))}
    extras = {}
    if extra:
        n_partons = (np.arange(len(jets)) % 3) + 1
        extras = {
            "genpart_pt": ak.unflatten(np.arange(n_partons.sum(), dtype=np.float32), n_partons),
            "jet_axis": np.ones((len(jets), 2)),
            "truth_match": np.ones(len(jets), np.int32),
        }
    return JetBatch.from_p4(*columns.values(), label=np.zeros(len(jets), np.int64), extra=extras)


def _parquet(path: Path, jets: list[np.ndarray], *, extra: bool = False) -> Path:
    batch = _batch(jets, extra)
    if all(np.isfinite(j).all() for j in jets):
        write_parquet(batch, path)
    else:  # write_parquet refuses NaN/inf: write the table another tool might have written
        ak.to_parquet(parquet_table(batch), path)
    return path


_WRITERS = {
    "jetclass": (_jetclass, ".root"),
    "aspen": (_aspen, ".h5"),
    "jetnet": (_jetnet, ".hdf5"),
    "toptagging": (_toptagging, ".h5"),
    "quarkgluon": (_quarkgluon, ".npz"),
    "parquet": (_parquet, ".parquet"),
}

# Format-specific cases: key -> (writer keyword arguments, jets, expected).
_SPECIAL: dict[str, tuple[dict, list[np.ndarray], str]] = {
    "jetclass/jagged_optional": ({"aux": "jagged"}, SMALL, "ok"),
    "jetclass/missing_optional": ({"labels": "none", "jet_branches": False, "aux": "none"},
                                  SMALL, "ok"),
    "jetclass/partial_labels": ({"labels": "some"}, SMALL, "ok"),
    "jetclass/odd_optional": (
        {"extra": {
            # one value per jet where one per particle is expected: skipped with one line
            "part_d0val": np.ones(3, np.float32),
            # jagged, but other counts than part_px: skipped with one line
            "part_dzval": ak.Array([[1.0], [], [2.0, 3.0, 4.0, 5.0]]),
            # fixed size per jet: a (n_jets, 3) extra
            "aux_genpart_eta": np.zeros((3, 3), np.float32),
            "event_weight": np.ones(3),  # unknown to jetfm: ignored
        }, "aux": "none"},
        SMALL, "ok",
    ),
    "aspen/no_jet_kinematics": ({"kinematics": False}, SMALL, "ok"),
    "jetnet/type_column": ({"type_column": True}, SMALL, "ok"),
    "toptagging/no_label_no_truth": ({"label": False, "truth": False}, SMALL, "ok"),
    "quarkgluon/no_label": ({"label": False}, SMALL, "ok"),
    "parquet/ragged_extras": ({"extra": True}, SMALL, "ok"),
}

EXPECTED: dict[str, str] = {
    **{f"{fmt}/{case}": want for fmt in _WRITERS for case, (_, want) in _COMMON.items()},
    **{key: want for key, (_, _, want) in _SPECIAL.items()},
}
N_JETS: dict[str, int] = {
    **{f"{fmt}/{case}": len(jets) for fmt in _WRITERS for case, (jets, _) in _COMMON.items()},
    **{key: len(jets) for key, (_, jets, _) in _SPECIAL.items()},
}


def write_awkward_files(directory: str | Path) -> dict[str, Path]:
    """Write every case of :data:`EXPECTED` under ``directory``; returns key -> path.

    Files are named ``<format>_<case><suffix>``; the JetNet names give no jet type, so those
    jets are unlabelled except in ``jetnet/type_column``, which carries a type column.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt, (writer, suffix) in _WRITERS.items():
        for case, (jets, _) in _COMMON.items():
            paths[f"{fmt}/{case}"] = writer(directory / f"{fmt}_{case}{suffix}", jets)
    for key, (kwargs, jets, _) in _SPECIAL.items():
        fmt, case = key.split("/")
        writer, suffix = _WRITERS[fmt]
        paths[key] = writer(directory / f"{fmt}_{case}{suffix}", jets, **kwargs)
    return paths
