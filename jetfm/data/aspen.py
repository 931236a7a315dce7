"""AspenOpenJets (AOJ) HDF5 files: CMS Open Data jets, unlabelled.

Layout assumed (the AOJ release; other datasets in the file are ignored):

* ``PFCands``: float (N, 150, 11), the particle-flow candidates of each jet, columns
  px, py, pz, E [GeV], d0, d0Err, dz, dzErr [cm, as stored], charge [e], pdgId, PUPPI weight.
  Real candidates come first; padding is the all-zero rows after the last candidate (an
  all-zero row before it is a null particle and is kept). Required.
* ``jet_kinematics``: float (N, 4) = jet pt [GeV], eta, phi [rad], soft-drop mass [GeV],
  kept in ``batch.extra`` as ``jet_pt, jet_eta, jet_phi, jet_sdmass``. Optional: when absent
  or of another shape it is skipped with one WARNING line.

The impact parameters are converted from the file's cm to the mm of
:class:`~jetfm.data.JetBatch` (x 10, in float64 so that :func:`write_aspen`, which divides by
10, gives back the stored float32 values exactly).

PDG ids give the JetClass particle-type flags (:func:`jetfm.data.pid.particle_type_flags`,
with CMS' HF pseudo-ids 1 and 2); ``pid``, ``charge``, the impact parameters and
``puppi_weight`` are kept as particle fields. All jets are unlabelled (-1).
"""

from __future__ import annotations

import os

import awkward as ak
import h5py
import numpy as np
from tqdm import tqdm

from jetfm.atomic import atomic_path
from jetfm.data._files import (
    Paths,
    as_paths,
    concatenate_common,
    file_ranges,
    log,
    open_hdf5,
    padding_mask,
    require_finite,
    validated,
)
from jetfm.data.batch import PARTICLE_TYPE_FLAGS, JetBatch, JetDataError
from jetfm.data.classes import UNLABELLED
from jetfm.data.pid import particle_type_flags

N_MAX = 150
PF_COLUMNS: tuple[str, ...] = (
    "px",
    "py",
    "pz",
    "energy",
    "d0val",
    "d0err",
    "dzval",
    "dzerr",
    "charge",
    "pid",
    "puppi_weight",
)
JET_COLUMNS: tuple[str, ...] = ("jet_pt", "jet_eta", "jet_phi", "jet_sdmass")
# Impact-parameter columns: cm in the file, mm in a JetBatch.
IP_COLUMNS: tuple[str, ...] = ("d0val", "d0err", "dzval", "dzerr")
CM_TO_MM = 10.0
SLICE = 10_000  # jets read per h5py slice


def _datasets(path: str, file: h5py.File) -> tuple[h5py.Dataset, h5py.Dataset | None]:
    """``PFCands`` (required) and ``jet_kinematics`` (None if absent or unusable, logged)."""
    if "PFCands" not in file:
        raise JetDataError(f"{path}: no dataset 'PFCands' (keys {list(file.keys())})")
    pf = file["PFCands"]
    if not isinstance(pf, h5py.Dataset) or pf.ndim != 3 or pf.shape[-1] != len(PF_COLUMNS):
        shape = getattr(pf, "shape", type(pf).__name__)
        raise JetDataError(
            f"{path}: dataset 'PFCands' has shape {shape}, not (N, M, {len(PF_COLUMNS)})"
        )
    jets = file.get("jet_kinematics")
    if jets is None:
        log.warning("%s: no dataset 'jet_kinematics'; jets carry no stored kinematics", path)
    elif not isinstance(jets, h5py.Dataset) or jets.shape != (len(pf), len(JET_COLUMNS)):
        log.warning(
            "%s: skipping dataset 'jet_kinematics' of shape %s (expected (%d, %d))",
            path, getattr(jets, "shape", None), len(pf), len(JET_COLUMNS),
        )
        jets = None
    return pf, jets


def _to_batch(pf: np.ndarray, jets: np.ndarray | None, path: str, entry: np.ndarray) -> JetBatch:
    batch = JetBatch.from_padded(pf, padding_mask(pf), PF_COLUMNS, entry=entry,
                                 source_files=(path,))
    particles = batch.particles
    pid = ak.values_astype(ak.nan_to_num(particles["pid"]), np.int64)
    flat_pid, counts = ak.to_numpy(ak.flatten(pid)), batch.n_particles
    flags = particle_type_flags(flat_pid, ak.to_numpy(ak.flatten(particles["charge"])))
    particles = ak.with_field(particles, pid, "pid")
    for name in IP_COLUMNS:
        particles = ak.with_field(
            particles, ak.values_astype(particles[name], np.float64) * CM_TO_MM, name
        )
    for name, flag in flags.items():
        particles = ak.with_field(particles, ak.unflatten(flag, counts), name)
    batch.particles = particles
    if jets is not None:
        batch.extra = {name: jets[:, i] for i, name in enumerate(JET_COLUMNS)}
    return batch


def read_aspen(
    paths: Paths,
    *,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    skip_invalid: bool = False,
) -> JetBatch:
    """Read AOJ file(s); ``entry_start/stop`` is a global range over the files in order.

    Only the requested jets are read, in slices of :data:`SLICE` jets; a file or range with
    no jets gives an empty batch. Invalid jets raise :class:`JetDataError` (or are dropped and
    counted with ``skip_invalid``).
    """
    files = as_paths(paths)
    handles = [open_hdf5(p) for p in files]
    try:
        datasets = [_datasets(p, f) for p, f in zip(files, handles, strict=True)]
        ranges = file_ranges([len(pf) for pf, _ in datasets], entry_start, entry_stop)
        slices = [
            (i, start, min(start + SLICE, rng.stop))
            for i, rng in enumerate(ranges)
            for start in range(rng.start, rng.stop, SLICE)
        ] or [(0, 0, 0)]
        batches = []
        for i, start, stop in tqdm(slices, desc="AOJ", unit="slice", disable=len(slices) < 4):
            pf, jets = datasets[i]
            entry = np.arange(start, stop, dtype=np.int64)
            jet_values = None if jets is None else jets[start:stop]
            batch = _to_batch(pf[start:stop], jet_values, files[i], entry)
            batch.source_files, batch.source[:] = tuple(files), i
            batches.append(validated(batch, files[i], skip_invalid))
    finally:
        for handle in handles:
            handle.close()
    return concatenate_common(batches, f"reading {len(files)} AspenOpenJets files")


def not_stored(batch: JetBatch) -> str:
    """What of ``batch`` the AOJ layout cannot hold, in words ("" if nothing).

    The layout has no labels, no extras but ``jet_kinematics`` and only the particle columns
    :data:`PF_COLUMNS` (the particle-type flags are recomputed from ``pid`` when reading, so
    they count as stored when ``pid`` is); absent columns are written as placeholders.
    """
    parts = []
    n_labelled = int(np.sum(batch.label != UNLABELLED))
    if n_labelled:
        parts.append(f"labels of {n_labelled} jets not stored (they read back unlabelled)")
    extras = sorted(set(batch.extra) - set(JET_COLUMNS))
    if extras:
        parts.append(f"extras {extras} not stored")
    derived = PARTICLE_TYPE_FLAGS if "pid" in batch.fields else ()
    fields = [f for f in batch.fields if f not in PF_COLUMNS and f not in derived]
    if fields:
        parts.append(f"particle fields {fields} not stored")
    placeholders = [f for f in PF_COLUMNS if f not in batch.fields]
    if placeholders:
        parts.append(f"absent particle columns {placeholders} written as placeholders "
                     "(0; puppi_weight 1), which read back as values")
    return "; ".join(parts)


def write_aspen(batch: JetBatch, path: str | os.PathLike[str], *, n_max: int = N_MAX) -> int:
    """Write ``batch`` in the AOJ layout; returns the number of particles dropped.

    Each jet keeps its ``n_max`` hardest constituents (pT-ordered; the count dropped is also
    logged). ``jet_kinematics`` comes from ``batch.extra`` where present, else from the
    E-scheme sum of all constituents and :func:`jetfm.physics.observables.softdrop_mass`
    (before truncation). Missing particle fields are written as zeros, except
    ``puppi_weight`` = 1 (a particle fully kept); impact parameters are written in cm. What
    the layout cannot hold (labels, other extras and fields, see :func:`not_stored`) is named
    in one WARNING line; use Parquet for a lossless copy.
    Raises :class:`JetDataError` before anything is written if a value to be written is NaN or
    inf (naming the column and the number of jets).
    """
    missing = [name for name in JET_COLUMNS if name not in batch.extra]
    computed = {"jet_pt": batch.jet_pt, "jet_eta": batch.jet_eta, "jet_phi": batch.jet_phi}
    if "jet_sdmass" in missing:
        from jetfm.physics.observables import softdrop_mass

        computed["jet_sdmass"] = softdrop_mass(batch)
    jets = np.stack(
        [np.asarray(batch.extra.get(k, computed.get(k)), dtype=np.float64) for k in JET_COLUMNS],
        axis=1,
    )
    particles = batch.particles
    for name in PF_COLUMNS:
        if name not in batch.fields:
            fill = 1.0 if name == "puppi_weight" else 0.0
            particles = ak.with_field(particles, ak.full_like(particles["px"], fill), name)
    for name in IP_COLUMNS:
        particles = ak.with_field(
            particles, ak.values_astype(particles[name], np.float64) / CM_TO_MM, name
        )
    full = batch[:]
    full.particles = particles
    padded = full.to_padded(PF_COLUMNS, n_max=n_max)
    require_finite(path, {"jet_kinematics": jets})
    require_finite(path, {f"PFCands[{name}]": padded.feature(name) for name in PF_COLUMNS})
    lost = not_stored(batch)
    if lost:
        log.warning("%s: the AspenOpenJets layout cannot hold this batch: %s (Parquet "
                    "keeps everything)", path, lost)
    if padded.n_truncated:
        log.info("%s: truncation to %d particles dropped %d", path, n_max, padded.n_truncated)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("PFCands", data=padded.values, compression="gzip")
        file.create_dataset("jet_kinematics", data=jets.astype(np.float32))
    return padded.n_truncated
