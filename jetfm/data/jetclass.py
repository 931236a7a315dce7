"""JetClass ROOT files (Qu et al., arXiv:2202.03772): read with uproot, write a weaver-ready TTree.

A file holds a TTree ``tree`` with one entry per jet:

* jagged float32 particle branches ``part_*`` (see :data:`PARTICLE_BRANCHES`), mapped onto the
  :class:`~jetfm.data.JetBatch` particle fields. ``part_deta`` / ``part_dphi`` are derived
  (``JetBatch.eta_rel`` / ``phi_rel``): written, never read. Two jetfm extension branches hold
  the fields JetClass has no branch for: ``part_pid`` (int32 PDG id) and ``part_puppiWeight``
  (:data:`EXTENSION_BRANCHES`);
* the one-hot labels ``label_QCD`` ... ``label_Tbl`` (bool or float), read as the class index.
  jetfm's ``QCD_quark`` / ``QCD_gluon`` are written as ``label_QCD`` plus a set
  ``label_QCD_quark`` / ``label_QCD_gluon`` branch (JetClass tools see QCD jets, jetfm reads
  the split back);
* jet-level values, kept in ``batch.extra``: a branch ``jet_<name>`` under the key
  ``jet_<name>``, a branch ``aux_<name>`` under ``<name>`` (:func:`extra_branch`). JetClass has
  ``jet_pt, jet_eta, jet_phi, jet_energy`` [GeV, rad], ``jet_nparticles``, ``jet_sdmass``
  [GeV], ``jet_tau1`` .. ``jet_tau4``, ``aux_genpart_pt, _eta, _phi, _pid`` (the generator
  parton(s) or boson the jet is matched to) and ``aux_truth_match`` (:data:`JET_BRANCHES`).

Only the four-momentum branches ``part_px, part_py, part_pz, part_energy`` (jagged, one value
per particle) are required. Every other known branch, and every ``jet_*`` / ``aux_*`` branch,
is read when present, in the layout it has: a jet-level branch that is a scalar per jet becomes
a numpy extra, one with a varying number of entries per jet (e.g. ``aux_genpart_*`` of QCD
jets with 1-3 hard partons) a ragged awkward extra, a fixed-size array a (n_jets, k) numpy
extra; an optional ``part_*`` branch must have one value per particle. A known branch that
cannot be used (unreadable type, strings, ``part_*`` counts that differ from ``part_px``) is
skipped with one WARNING line per file naming it. Label branches that are absent count as not
set; a file with no usable ``label_*`` branch holds unlabelled jets (label -1,
:data:`jetfm.data.classes.UNLABELLED`, as AspenOpenJets data; tasks that need labels refuse
them), logged once per file.

The writer writes what the batch holds and nothing it does not: the four-momenta, the particle
fields present, ``part_deta/part_dphi``, the JetClass ``jet_*`` observables (from
``batch.extra`` when present, so a file read and written again is unchanged, else computed: the
E-scheme jet four-momentum, the soft-drop mass and N-subjettiness (beta = 1, R0 = 0.8) from
:mod:`jetfm.physics.observables`) and every extra of the batch (ragged ones as jagged branches
with their own counter). Absent particle fields and truth values are not written (no zeros that
would read back as data). Every value is checked before the file is opened: a NaN or inf (given
or computed) is refused with the branch name and the number of jets, and nothing is written. A
batch of only unlabelled jets is written without ``label_*`` branches (and reads back
unlabelled); a batch mixing labelled and unlabelled jets is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import uproot
from uproot.interpretation.identify import UnknownInterpretation

from jetfm.atomic import atomic_path
from jetfm.data._files import (
    Paths,
    as_paths,
    concatenate_common,
    file_ranges,
    log,
    require_finite,
    require_keys,
    validated,
)
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import (
    CLASS_INDEX,
    JETCLASS_CLASSES,
    JETCLASS_LABEL_BRANCHES,
    UNLABELLED,
)

TREE = "tree"
MOMENTUM_BRANCHES: tuple[str, ...] = ("part_px", "part_py", "part_pz", "part_energy")
# ROOT branch -> JetBatch particle field (the JetClass particle branches).
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
# Particle fields JetClass has no branch for, written by jetfm as extension branches (and read
# back), with their ROOT dtype: PDG ids as integers, everything else float32.
EXTENSION_BRANCHES: dict[str, str] = {"part_pid": "pid", "part_puppiWeight": "puppi_weight"}
_BRANCH_DTYPE: dict[str, type] = {"pid": np.int32}
ALL_PARTICLE_BRANCHES: dict[str, str] = {**PARTICLE_BRANCHES, **EXTENSION_BRANCHES}
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
# Jet-level branches are ``jet_<name>`` (extra key ``jet_<name>``) and ``aux_<name>`` (extra
# key ``<name>``): every extra of a batch is written under this rule and read back by it.
EXTRA_PREFIXES: tuple[str, ...] = ("jet_", "aux_")
# jetfm's split of JetClass' QCD class: written as label_QCD plus one of these (reads back as
# QCD_quark / QCD_gluon; weaver and other JetClass readers see label_QCD).
QCD_SPLIT_BRANCHES: dict[str, int] = {
    "label_QCD_quark": CLASS_INDEX["QCD_quark"],
    "label_QCD_gluon": CLASS_INDEX["QCD_gluon"],
}
# Every fixed branch name the reader knows; only MOMENTUM_BRANCHES are required.
BRANCHES: tuple[str, ...] = (
    *ALL_PARTICLE_BRANCHES, *JETCLASS_LABEL_BRANCHES, *QCD_SPLIT_BRANCHES,
)


def extra_branch(key: str) -> str:
    """ROOT branch of ``batch.extra[key]``: ``jet_*`` keys as they are, others ``aux_<key>``."""
    return key if key.startswith("jet_") else f"aux_{key}"


def extra_key(branch: str) -> str:
    """Inverse of :func:`extra_branch` for a ``jet_*`` or ``aux_*`` branch."""
    return branch.removeprefix("aux_")


@contextmanager
def _readable(path: str) -> Iterator[None]:
    """Turn uproot's errors on a damaged or truncated file into :class:`JetDataError`."""
    try:
        yield
    except JetDataError:
        raise
    except Exception as err:  # uproot raises OSError, ValueError, DeserializationError, ...
        raise JetDataError(f"{path}: not a readable ROOT file ({err})") from err


@dataclass
class _Tree:
    """An open JetClass tree, the known branches still read from it, and those skipped."""

    path: str
    tree: Any
    branches: list[str]
    skipped: set[str] = field(default_factory=set)

    def skip(self, branch: str, reason: str) -> None:
        """Stop reading ``branch`` from this file; log it once."""
        if branch in self.branches:
            self.branches.remove(branch)
        if branch not in self.skipped:
            self.skipped.add(branch)
            log.warning("%s: skipping branch %s (%s)", self.path, branch, reason)

    def read(self, entry_start: int, entry_stop: int) -> dict[str, ak.Array]:
        """The known branches of entries [start, stop); a branch that fails alone is skipped."""
        kwargs = {"entry_start": entry_start, "entry_stop": entry_stop}
        try:
            arrays = self.tree.arrays(self.branches, **kwargs)
            return {b: arrays[b] for b in self.branches}
        except Exception:  # find the branch at fault below; a damaged file fails there too
            pass
        out = {}
        for branch in list(self.branches):
            try:
                out[branch] = self.tree[branch].array(**kwargs)
            except Exception as err:  # uproot: unknown streamers, damaged baskets, ...
                if branch in MOMENTUM_BRANCHES:
                    raise JetDataError(
                        f"{self.path}: not a readable ROOT file (branch {branch}: {err})"
                    ) from err
                self.skip(branch, f"cannot be read: {type(err).__name__}: {err}")
        return out


def _open_tree(path: str) -> _Tree:
    with _readable(path):
        file = uproot.open(path)
        if TREE not in file:
            raise JetDataError(f"{path}: no TTree {TREE!r}; keys {file.keys(cycle=False)}")
        tree = file[TREE]
        if not isinstance(tree, uproot.TTree):
            raise JetDataError(f"{path}: {TREE!r} is a {type(tree).__name__}, not a TTree")
        keys = set(tree.keys())
        require_keys(path, keys, MOMENTUM_BRANCHES, "four-momentum branches")
        extras = sorted(k for k in keys if k.startswith(EXTRA_PREFIXES) and "." not in k)
        out = _Tree(path, tree, [b for b in BRANCHES if b in keys] + extras)
        for branch in list(out.branches):
            if isinstance(tree[branch].interpretation, UnknownInterpretation):
                out.skip(branch, f"ROOT type {tree[branch].typename!r} cannot be read")
    if not any(b in out.branches for b in JETCLASS_LABEL_BRANCHES):
        log.info("%s: no label_* branches; its jets are unlabelled", path)
    return out


def _is_numeric(array: ak.Array) -> bool:
    """Numbers or booleans at any list depth (no strings, records or missing values)."""
    layout = array.layout
    while isinstance(layout, ak.contents.ListOffsetArray | ak.contents.ListArray
                     | ak.contents.RegularArray):
        if layout.parameter("__array__") in ("string", "bytestring"):
            return False
        layout = layout.content
    return isinstance(layout, ak.contents.NumpyArray) and layout.parameter("__array__") is None


def _jet_level(array: ak.Array) -> np.ndarray | ak.Array:
    """A jet-level branch: numpy if regular (scalar or fixed size), else a ragged awkward array."""
    if array.ndim == 1 or array.layout.purelist_isregular:
        return ak.to_numpy(array)
    return array


def _labels(tree: _Tree, arrays: dict[str, ak.Array], entry: np.ndarray) -> np.ndarray | None:
    """Class index per jet from the label_* branches present; None if there are none."""
    present = []
    for branch in JETCLASS_LABEL_BRANCHES:
        if branch in arrays:
            if arrays[branch].ndim != 1 or not _is_numeric(arrays[branch]):
                tree.skip(branch, f"type {arrays[branch].type} is not one number per jet")
            else:
                present.append(branch)
    if not present:
        return None
    onehot = np.zeros((len(entry), len(JETCLASS_LABEL_BRANCHES)), dtype=bool)
    for i, branch in enumerate(JETCLASS_LABEL_BRANCHES):
        if branch in present:
            onehot[:, i] = ak.to_numpy(arrays[branch]) != 0
    n_set = onehot.sum(axis=1)
    bad = np.flatnonzero(n_set != 1)
    if len(bad):
        absent = [b for b in JETCLASS_LABEL_BRANCHES if b not in present]
        raise JetDataError(
            f"{tree.path}: {len(bad)} jet(s) with {n_set[bad[0]]} of the label_* branches set "
            f"(first: entry {entry[bad[0]]}); exactly one must be set"
            + (f" (absent label branches: {absent})" if absent else "")
        )
    label = np.argmax(onehot, axis=1).astype(np.int64)
    return _split_qcd(tree, arrays, entry, label)


def _split_qcd(
    tree: _Tree, arrays: dict[str, ak.Array], entry: np.ndarray, label: np.ndarray
) -> np.ndarray:
    """QCD jets with ``label_QCD_quark`` / ``label_QCD_gluon`` set become QCD_quark / gluon."""
    split = np.zeros(len(label), dtype=np.int64)
    for branch, index in QCD_SPLIT_BRANCHES.items():
        if branch not in arrays:
            continue
        if arrays[branch].ndim != 1 or not _is_numeric(arrays[branch]):
            tree.skip(branch, f"type {arrays[branch].type} is not one number per jet")
            continue
        is_set = ak.to_numpy(arrays[branch]) != 0
        bad = np.flatnonzero(is_set & ((split != 0) | (label != CLASS_INDEX["QCD"])))
        if len(bad):
            raise JetDataError(
                f"{tree.path}: {len(bad)} jet(s) with {branch} set but not label_QCD alone "
                f"(first: entry {entry[bad[0]]}); {list(QCD_SPLIT_BRANCHES)} refine label_QCD"
            )
        split[is_set] = index
    return np.where(split != 0, split, label)


def _to_batch(
    tree: _Tree, arrays: dict[str, ak.Array], entry: np.ndarray, source: int,
    files: tuple[str, ...],
) -> JetBatch:
    path = tree.path
    counts = None
    for branch in MOMENTUM_BRANCHES:
        column = arrays[branch]
        if column.ndim != 2 or not _is_numeric(column):
            raise JetDataError(
                f"{path}: branch {branch} has type {column.type}; expected one number per "
                "particle (a jagged array)"
            )
        if counts is None:
            counts = ak.num(column, axis=1)
        elif not ak.all(ak.num(column, axis=1) == counts):
            raise JetDataError(f"{path}: branch {branch} has other particle counts than part_px")
    particles = {}
    for branch, name in ALL_PARTICLE_BRANCHES.items():
        if branch not in arrays:
            continue
        column = arrays[branch]
        if branch not in MOMENTUM_BRANCHES:
            if column.ndim != 2 or not _is_numeric(column):
                tree.skip(branch, f"type {column.type} is not one number per particle")
                continue
            if not ak.all(ak.num(column, axis=1) == counts):
                tree.skip(branch, "its particle counts differ from part_px")
                continue
        particles[name] = column if name != "pid" else ak.values_astype(column, np.int64)
    extra = {}
    for branch in tree.branches:
        if not branch.startswith(EXTRA_PREFIXES) or branch not in arrays:
            continue
        if not _is_numeric(arrays[branch]):
            tree.skip(branch, f"type {arrays[branch].type} is not numeric")
            continue
        extra[extra_key(branch)] = _jet_level(arrays[branch])
    return JetBatch(
        ak.zip(particles),
        label=_labels(tree, arrays, entry),
        extra=extra,
        source_files=files,
        source=np.full(len(entry), source, dtype=np.int64),
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

    ``entry_start`` / ``entry_stop`` select a global entry range over the files taken in order;
    a range (or file) with no entries gives an empty batch. Invalid jets (non-finite momenta,
    negative energy, no particles) raise :class:`JetDataError` naming the file, the entry and
    the field; with ``skip_invalid`` they are dropped and counted in a warning. Files with
    different optional branches are joined on the branches they share (the rest is logged).
    """
    files = as_paths(paths)
    trees = [_open_tree(p) for p in files]
    ranges = file_ranges([t.tree.num_entries for t in trees], entry_start, entry_stop)
    batches = []
    for i, (tree, rng) in enumerate(zip(trees, ranges, strict=True)):
        if len(rng) == 0 and (batches or i < len(trees) - 1):
            continue
        with _readable(tree.path):
            arrays = tree.read(rng.start, rng.stop)
        entry = np.arange(rng.start, rng.stop, dtype=np.int64)
        batch = _to_batch(tree, arrays, entry, i, tuple(files))
        batches.append(validated(batch, tree.path, skip_invalid))
    return concatenate_common(batches, f"reading {len(files)} JetClass files")


def iter_jetclass(
    paths: Paths, *, step_size: int | str = 100_000, skip_invalid: bool = False
) -> Iterator[JetBatch]:
    """Lazily iterate over JetClass file(s) in chunks of ``step_size`` entries (or "100 MB").

    Chunks never span two files; each carries the full ``source_files`` tuple so that chunks
    concatenate with consistent provenance. Files are opened when reached; a file without
    entries yields nothing. Optional branches are read as in :func:`read_jetclass`.
    """
    files = as_paths(paths)
    for i, path in enumerate(files):
        tree = _open_tree(path)
        n = tree.tree.num_entries
        with _readable(path):
            step = (
                tree.tree.num_entries_for(step_size, tree.branches)
                if isinstance(step_size, str) else int(step_size)
            )
        if step < 1:
            raise ValueError(f"step_size must give at least one entry per chunk, got {step_size}")
        for start in range(0, n, step):
            stop = min(start + step, n)
            with _readable(path):
                arrays = tree.read(start, stop)
            entry = np.arange(start, stop, dtype=np.int64)
            batch = _to_batch(tree, arrays, entry, i, tuple(files))
            yield validated(batch, f"{path}[{start}:{stop}]", skip_invalid)


def _onehot(label: np.ndarray) -> dict[str, np.ndarray]:
    """label_* columns (plus :data:`QCD_SPLIT_BRANCHES` if needed); none if all unlabelled."""
    unlabelled = label == UNLABELLED
    if unlabelled.all() and len(label):
        log.info("all %d jets are unlabelled: writing no label_* branches", len(label))
        return {}
    if unlabelled.any():
        raise JetDataError(
            f"JetClass files need a label for every jet or for none; {int(unlabelled.sum())} "
            f"of {len(label)} jets are unlabelled"
        )
    split = {b: label == i for b, i in QCD_SPLIT_BRANCHES.items()}
    columns = {
        b: (label == i) | (i == CLASS_INDEX["QCD"] and label >= len(JETCLASS_CLASSES))
        for i, b in enumerate(JETCLASS_LABEL_BRANCHES)
    }
    if any(v.any() for v in split.values()):
        log.info("writing %d QCD_quark/QCD_gluon jets as label_QCD with %s",
                 int(sum(v.sum() for v in split.values())), list(QCD_SPLIT_BRANCHES))
        columns.update(split)
    return columns


def _jet_columns(batch: JetBatch) -> dict[str, np.ndarray | ak.Array]:
    """Jet-level branches: the computed JetClass observables, then every extra of the batch.

    ``jet_pt, jet_eta, jet_phi, jet_energy, jet_nparticles, jet_sdmass, jet_tau1..4`` are taken
    from ``batch.extra`` where present, else computed (float32, as in JetClass). Every other
    extra is written under :func:`extra_branch` in its own dtype; nothing is invented (truth
    branches are written only when the batch has them).
    """
    computed_keys = [key for key in JET_BRANCHES.values() if key.startswith("jet_")]
    missing = {key for key in computed_keys if key not in batch.extra}
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
        from jetfm.physics import observables

        tau = observables.nsubjettiness(batch, n_max=4)
        computed["jet_sdmass"] = observables.softdrop_mass(batch)
        computed.update({key: tau[:, i] for i, key in enumerate(_TAU_KEYS)})
    values = {key: batch.extra.get(key, computed.get(key)) for key in computed_keys}
    values.update({k: v for k, v in batch.extra.items() if k not in values})
    columns: dict[str, np.ndarray | ak.Array] = {}
    for key, value in values.items():
        jetclass = key in JET_BRANCHES.values()  # JetClass branches are float32
        numeric = (_is_numeric(value) if isinstance(value, ak.Array)
                   else np.asarray(value).dtype.kind in "biuf")
        if not numeric:
            raise JetDataError(
                f"extra {key!r} holds {getattr(value, 'type', np.asarray(value).dtype)}, not "
                "numbers: a ROOT branch cannot keep it (write .parquet, which keeps every extra)"
            )
        if isinstance(value, ak.Array):
            if value.ndim > 2:
                raise JetDataError(
                    f"extra {key!r} has type {value.type}: a ROOT branch holds at most one "
                    "list per jet"
                )
            columns[extra_branch(key)] = ak.values_astype(value, np.float32) if jetclass else value
        else:
            columns[extra_branch(key)] = np.asarray(value, dtype=np.float32 if jetclass else None)
    return columns


def jetclass_branches(batch: JetBatch) -> dict[str, Any]:
    """The data of a JetClass TTree: ``{"part": record array, label_*, jet_*, aux_*}``.

    The ``part`` record (one ``ak.zip``) becomes the ``part_*`` branches sharing the counter
    ``npart`` when passed to ``mktree``: the four-momenta, the derived ``deta`` / ``dphi`` and
    the batch's other particle fields (those JetClass lacks as :data:`EXTENSION_BRANCHES`).
    Fields the batch does not have are not written (a reader sees them absent, not zero).
    """
    part = {}
    for branch, name in ALL_PARTICLE_BRANCHES.items():
        if name in batch.fields:
            dtype = _BRANCH_DTYPE.get(name, np.float32)
            part[branch.removeprefix("part_")] = ak.values_astype(batch.particles[name], dtype)
    part["deta"] = ak.values_astype(batch.eta_rel, np.float32)
    part["dphi"] = ak.values_astype(batch.phi_rel, np.float32)
    return {"part": ak.zip(part), **_onehot(batch.label), **_jet_columns(batch)}


def write_jetclass(batch: JetBatch, path: str | os.PathLike[str]) -> None:
    """Write ``batch`` as a JetClass TTree ``tree`` (particle branches share ``npart``).

    Writes what the batch holds and nothing else (see :func:`jetclass_branches`); the file
    reads back as the same batch (float32 values, QCD_quark / QCD_gluon labels included).
    Raises :class:`JetDataError` before anything is written if a value to be written (given
    or computed: ``part_deta``, ``jet_sdmass``, ``jet_tau*``, ...) is NaN or inf, naming the
    branch and the number of jets, or if the batch mixes labelled and unlabelled jets.
    """
    try:
        branches = jetclass_branches(batch)
    except JetDataError as err:  # what the batch holds that a TTree cannot: name the output
        raise JetDataError(f"{os.fspath(path)}: {err}") from err
    part = branches["part"]
    require_finite(path, {f"part_{f}": part[f] for f in part.fields}, "branch")
    require_finite(path, {k: v for k, v in branches.items() if k != "part"}, "branch")
    with atomic_path(path) as tmp, uproot.recreate(tmp) as file:
        file.mktree(TREE, branches)
