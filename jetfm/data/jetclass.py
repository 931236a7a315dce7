"""JetClass ROOT files (Qu et al., arXiv:2202.03772): read with uproot, write a weaver-ready TTree.

A file holds a TTree ``tree`` with one entry per jet:

* jagged float32 particle branches ``part_*`` (see :data:`PARTICLE_BRANCHES`), mapped onto the
  :class:`~jetfm.data.JetBatch` particle fields. ``part_deta`` / ``part_dphi`` are derived
  (``JetBatch.eta_rel`` / ``phi_rel``): written, never read.
* the one-hot labels ``label_QCD`` ... ``label_Tbl`` (bool or float), read as the class index;
* jet-level and truth scalars, kept in ``batch.extra`` under the keys of :data:`JET_BRANCHES`:
  ``jet_pt, jet_eta, jet_phi, jet_energy`` [GeV, rad], ``jet_nparticles``, ``jet_sdmass``
  [GeV], ``jet_tau1`` .. ``jet_tau4``, ``genpart_pt, genpart_eta, genpart_phi, genpart_pid``
  (the generator parton or boson the jet is matched to) and ``truth_match``.

The writer takes those jet-level values from ``batch.extra`` when present (so a file read and
written again is unchanged) and otherwise computes them: the E-scheme jet four-momentum, the
soft-drop mass and N-subjettiness (beta = 1, R0 = 0.8) from :mod:`jetfm.physics.observables`;
missing truth values and missing particle fields (e.g. impact parameters of generator jets)
are written as zeros. JetClass has no unlabelled class and no quark/gluon split:
``QCD_quark`` / ``QCD_gluon`` jets are written as ``label_QCD`` (logged), unlabelled jets are an
error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import awkward as ak
import numpy as np
import uproot

from jetfm.atomic import atomic_path
from jetfm.data._files import Paths, as_paths, file_ranges, log, require_keys, validated
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import (
    CLASS_INDEX,
    JETCLASS_CLASSES,
    JETCLASS_LABEL_BRANCHES,
    UNLABELLED,
)

TREE = "tree"
# ROOT branch -> JetBatch particle field.
PARTICLE_BRANCHES: dict[str, str] = {
    "part_px": "px",
    "part_py": "py",
    "part_pz": "pz",
    "part_energy": "energy",
    "part_d0val": "d0val",
    "part_d0err": "d0err",
    "part_dzval": "dzval",
    "part_dzerr": "dzerr",
    "part_charge": "charge",
    "part_isChargedHadron": "is_charged_hadron",
    "part_isNeutralHadron": "is_neutral_hadron",
    "part_isPhoton": "is_photon",
    "part_isElectron": "is_electron",
    "part_isMuon": "is_muon",
}
# ROOT branch -> key in JetBatch.extra.
JET_BRANCHES: dict[str, str] = {
    "jet_pt": "jet_pt",
    "jet_eta": "jet_eta",
    "jet_phi": "jet_phi",
    "jet_energy": "jet_energy",
    "jet_nparticles": "jet_nparticles",
    "jet_sdmass": "jet_sdmass",
    **{f"jet_tau{i}": f"jet_tau{i}" for i in range(1, 5)},
    "aux_genpart_eta": "genpart_eta",
    "aux_genpart_phi": "genpart_phi",
    "aux_genpart_pid": "genpart_pid",
    "aux_genpart_pt": "genpart_pt",
    "aux_truth_match": "truth_match",
}
_TAU_KEYS = tuple(f"jet_tau{i}" for i in range(1, 5))
BRANCHES: tuple[str, ...] = (*PARTICLE_BRANCHES, *JETCLASS_LABEL_BRANCHES, *JET_BRANCHES)


@contextmanager
def _readable(path: str) -> Iterator[None]:
    """Turn uproot's errors on a damaged or truncated file into :class:`JetDataError`."""
    try:
        yield
    except JetDataError:
        raise
    except Exception as err:  # uproot raises OSError, ValueError, DeserializationError, ...
        raise JetDataError(f"{path}: not a readable ROOT file ({err})") from err


def _open_tree(path: str) -> Any:
    with _readable(path):
        file = uproot.open(path)
        if TREE not in file:
            raise JetDataError(f"{path}: no TTree {TREE!r}; keys {file.keys(cycle=False)}")
        tree = file[TREE]
        if not isinstance(tree, uproot.TTree):
            raise JetDataError(f"{path}: {TREE!r} is a {type(tree).__name__}, not a TTree")
        require_keys(path, tree.keys(), BRANCHES, "branches")
    return tree


def _labels(arrays: ak.Array, path: str, entry: np.ndarray) -> np.ndarray:
    onehot = np.stack([ak.to_numpy(arrays[b]) != 0 for b in JETCLASS_LABEL_BRANCHES], axis=1)
    n_set = onehot.sum(axis=1)
    bad = np.flatnonzero(n_set != 1)
    if len(bad):
        raise JetDataError(
            f"{path}: {len(bad)} jet(s) with {n_set[bad[0]]} of the label_* branches set "
            f"(first: entry {entry[bad[0]]}); exactly one must be set"
        )
    return np.argmax(onehot, axis=1).astype(np.int64)


def _to_batch(
    arrays: ak.Array, path: str, entry: np.ndarray, source: int, files: tuple[str, ...]
) -> JetBatch:
    try:
        particles = ak.zip({field: arrays[b] for b, field in PARTICLE_BRANCHES.items()})
    except ValueError as err:
        raise JetDataError(f"{path}: part_* branches differ in length ({err})") from err
    return JetBatch(
        particles,
        label=_labels(arrays, path, entry),
        extra={key: ak.to_numpy(arrays[b]) for b, key in JET_BRANCHES.items()},
        source_files=files,
        source=np.full(len(arrays), source, dtype=np.int64),
        entry=entry,
    )


def read_jetclass(
    paths: Paths,
    *,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    skip_invalid: bool = False,
) -> JetBatch:
    """Read JetClass ROOT file(s) into one batch.

    ``entry_start`` / ``entry_stop`` select a global entry range over the files taken in order.
    Invalid jets (non-finite momenta, negative energy, no particles) raise
    :class:`JetDataError`; with ``skip_invalid`` they are dropped and counted in a warning.
    """
    files = as_paths(paths)
    trees = [_open_tree(p) for p in files]
    ranges = file_ranges([t.num_entries for t in trees], entry_start, entry_stop)
    batches = []
    for i, (path, tree, rng) in enumerate(zip(files, trees, ranges, strict=True)):
        if len(rng) == 0 and batches:
            continue
        with _readable(path):
            arrays = tree.arrays(BRANCHES, entry_start=rng.start, entry_stop=rng.stop)
        entry = np.arange(rng.start, rng.stop, dtype=np.int64)
        batch = _to_batch(arrays, path, entry, i, tuple(files))
        batches.append(validated(batch, path, skip_invalid))
    return JetBatch.concatenate(batches)


def iter_jetclass(
    paths: Paths, *, step_size: int | str = 100_000, skip_invalid: bool = False
) -> Iterator[JetBatch]:
    """Lazily iterate over JetClass file(s) in chunks of ``step_size`` entries (or "100 MB").

    Chunks never span two files; each carries the full ``source_files`` tuple so that chunks
    concatenate with consistent provenance. Files are opened when reached.
    """
    files = as_paths(paths)
    for i, path in enumerate(files):
        tree = _open_tree(path)
        chunks = tree.iterate(BRANCHES, step_size=step_size, report=True)
        while True:
            with _readable(path):
                chunk = next(chunks, None)
            if chunk is None:
                break
            arrays, report = chunk
            entry = np.arange(report.tree_entry_start, report.tree_entry_stop, dtype=np.int64)
            batch = _to_batch(arrays, path, entry, i, tuple(files))
            yield validated(batch, f"{path}[{entry[0]}:{entry[-1] + 1}]", skip_invalid)


def _onehot(label: np.ndarray) -> dict[str, np.ndarray]:
    if np.any(label == UNLABELLED):
        raise JetDataError("JetClass files need a label for every jet; batch has unlabelled jets")
    qcd = CLASS_INDEX["QCD"]
    is_qg = label >= len(JETCLASS_CLASSES)
    if is_qg.any():
        log.info("writing %d QCD_quark/QCD_gluon jets as label_QCD", int(is_qg.sum()))
    label = np.where(is_qg, qcd, label)
    return {b: label == i for i, b in enumerate(JETCLASS_LABEL_BRANCHES)}


def _jet_columns(batch: JetBatch) -> dict[str, np.ndarray]:
    """The jet-level branches: from ``batch.extra`` where present, else computed or zero."""
    missing = {key for key in JET_BRANCHES.values() if key not in batch.extra}
    computed: dict[str, np.ndarray] = {}
    if missing:
        computed = {
            "jet_pt": batch.jet_pt,
            "jet_eta": batch.jet_eta,
            "jet_phi": batch.jet_phi,
            "jet_energy": batch.jet_energy,
            "jet_nparticles": batch.n_particles,
        }
    if missing & {"jet_sdmass", *_TAU_KEYS}:
        from jetfm.physics.observables import nsubjettiness, softdrop_mass

        tau = nsubjettiness(batch, n_max=4)
        computed["jet_sdmass"] = softdrop_mass(batch)
        computed.update({key: tau[:, i] for i, key in enumerate(_TAU_KEYS)})
    zeros = np.zeros(len(batch))
    return {
        branch: np.asarray(batch.extra.get(key, computed.get(key, zeros)), dtype=np.float32)
        for branch, key in JET_BRANCHES.items()
    }


def jetclass_branches(batch: JetBatch) -> dict[str, Any]:
    """The data of a JetClass TTree: ``{"part": record array, label_*, jet_*, aux_*}``.

    The ``part`` record (one ``ak.zip``) becomes the ``part_*`` branches sharing the counter
    ``npart`` when passed to ``mktree``.
    """
    zeros = ak.zeros_like(batch.particles["px"], dtype=np.float32)
    part = {}
    for branch, field in PARTICLE_BRANCHES.items():
        column = batch.particles[field] if field in batch.fields else zeros
        part[branch.removeprefix("part_")] = ak.values_astype(column, np.float32)
    part["deta"] = ak.values_astype(batch.eta_rel, np.float32)
    part["dphi"] = ak.values_astype(batch.phi_rel, np.float32)
    return {"part": ak.zip(part), **_onehot(batch.label), **_jet_columns(batch)}


def write_jetclass(batch: JetBatch, path: str | os.PathLike[str]) -> None:
    """Write ``batch`` as a JetClass TTree ``tree`` (particle branches share ``npart``)."""
    branches = jetclass_branches(batch)
    with atomic_path(path) as tmp, uproot.recreate(tmp) as file:
        file.mktree(TREE, branches)
