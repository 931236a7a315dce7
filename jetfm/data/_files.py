"""Helpers shared by the format readers: path lists, file checks and jet validation."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

import awkward as ak
import h5py
import numpy as np
import pyarrow.parquet as pq

from jetfm.data.batch import JetBatch, JetDataError

log = logging.getLogger("jetfm.data")

PathLike = str | os.PathLike[str]
Paths = PathLike | Sequence[PathLike]


def as_paths(paths: Paths) -> list[str]:
    """One path or a sequence of paths as a list of strings; each must be an existing file.

    Raises :class:`JetDataError` naming the path: "is a directory, not a file" or "no such
    file".
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out = [os.fspath(p) for p in paths]
    if not out:
        raise JetDataError("no input files given")
    for path in out:
        if os.path.isdir(path):
            raise JetDataError(f"{path}: is a directory, not a file")
        if not os.path.isfile(path):
            raise JetDataError(f"{path}: no such file")
    return out


# The Parquet files jetfm writes, told apart by their key-value metadata.
TOKENS_META_KEY = b"jetfm_tokens"  # jetfm.data.tokens.write_tokens
TREES_META_KEY = b"jetfm_trees"  # jetfm.data.trees_io.write_trees
PARQUET_KINDS: dict[str, str] = {
    "jets": "a jetfm jet file (read_jets; written by write_parquet)",
    "tokens": "a jetfm token file (written by `jetfm tokenize`: VQ codes, not particles)",
    "trees": "a jetfm clustering-tree file (written by `jetfm trees`)",
}


def parquet_kind(path: PathLike) -> str | None:
    """Which jetfm Parquet file ``path`` is (a key of :data:`PARQUET_KINDS`), None if none."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # pyarrow: ArrowInvalid, OSError for non-Parquet or damaged files
        return None
    if TOKENS_META_KEY in meta:
        return "tokens"
    if TREES_META_KEY in meta:
        return "trees"
    if b'"jetfm"' in meta.get(b"AWKWARD_ATTRS", b""):  # write_parquet's attrs record
        return "jets"
    return None


def require_parquet_kind(path: PathLike, wanted: str) -> None:
    """Raise :class:`JetDataError` if ``path`` is another kind of jetfm Parquet file, saying
    which (a token file given where jets are read, ...); other files pass (checked later)."""
    kind = parquet_kind(path)
    if kind is not None and kind != wanted:
        raise JetDataError(
            f"{os.fspath(path)}: {PARQUET_KINDS[kind]}, not {PARQUET_KINDS[wanted].split(' (')[0]}"
        )


def require_keys(path: str, available: Iterable[str], wanted: Iterable[str], what: str) -> None:
    """Raise naming the file and the missing ``what`` (branches, datasets, columns)."""
    present = set(available)
    missing = [k for k in wanted if k not in present]
    if missing:
        raise JetDataError(f"{path}: missing {what} {missing}; found {sorted(present)[:20]}")


def concatenate_common(batches: Sequence[JetBatch], origin: str) -> JetBatch:
    """Join batches keeping the particle fields and extras all of them have.

    Files of one format may differ in their optional branches (and files of different
    formats in everything but the four-momenta): what is left out is logged once at WARNING
    level naming the fields. The batches are modified in place.
    """
    batches = list(batches)
    fields = [f for f in batches[0].fields if all(f in b.fields for b in batches)]
    extras = [k for k in batches[0].extra if all(k in b.extra for b in batches)]
    dropped = {f for b in batches for f in b.fields} - set(fields)
    dropped |= {k for b in batches for k in b.extra} - set(extras)
    if dropped:
        log.warning("%s: fields not in all of them left out: %s", origin, sorted(dropped))
        for b in batches:
            b.particles = b.particles[fields]
            b.extra = {k: b.extra[k] for k in extras}
    return JetBatch.concatenate(batches)


def validated(batch: JetBatch, origin: str, skip_invalid: bool) -> JetBatch:
    """``batch.check(origin)``, or with ``skip_invalid`` drop bad jets and log the count."""
    if not skip_invalid:
        return batch.check(origin)
    batch, report = batch.drop_invalid(origin)
    if report.n_removed:
        log.warning("%s", report)
    return batch


def file_ranges(
    n_entries: Sequence[int], entry_start: int | None, entry_stop: int | None
) -> list[range]:
    """Per-file entry ranges of the global [entry_start, entry_stop) over files read in order.

    Entries count through the files one after the other (as ``uproot.concatenate``);
    negative values count from the end, as in Python slicing.
    """
    wanted = range(sum(n_entries))[slice(entry_start, entry_stop)]
    ranges, offset = [], 0
    for n in n_entries:
        lo = min(max(wanted.start - offset, 0), n)
        hi = min(max(wanted.stop - offset, 0), n)
        ranges.append(range(lo, max(lo, hi)))
        offset += n
    return ranges


def open_hdf5(path: str) -> h5py.File:
    """Open an HDF5 file for reading; a damaged file raises :class:`JetDataError`."""
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise JetDataError(f"{path}: not a readable HDF5 file ({err})") from err


def padding_mask(values: np.ndarray) -> np.ndarray:
    """Real-particle mask of a zero-padded (n_jets, n_slots, n_columns) array.

    Padding is the run of all-zero rows at the end of a jet; an all-zero row before the last
    non-zero one is a real null particle (four-momentum 0, no weight in any observable) and is
    kept, so the mask is always left-aligned. A row with a NaN counts as a particle (and then
    fails validation).
    """
    values = np.asarray(values)
    if values.shape[0] == 0 or values.shape[1] == 0:
        return np.zeros(values.shape[:2], dtype=bool)
    nonzero = np.any(values != 0, axis=-1)
    last = values.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    counts = np.where(nonzero.any(axis=1), last, 0)
    return np.arange(values.shape[1])[None, :] < counts[:, None]


def _non_finite_jets(column: object) -> np.ndarray | None:
    """Per-jet NaN/inf flag of a numpy (n_jets, ...) or awkward column (None: not numeric)."""
    if isinstance(column, ak.Array):
        try:
            dtype = ak.flatten(column, axis=None).layout.dtype
        except (AttributeError, TypeError, ValueError):  # records, unions, strings
            return None
        if not np.issubdtype(dtype, np.number):
            return None
        bad = ~np.isfinite(column)
        while bad.ndim > 1:
            bad = ak.any(bad, axis=-1)
        return np.asarray(ak.to_numpy(ak.fill_none(bad, False)), dtype=bool)
    arr = np.asarray(column)
    if not np.issubdtype(arr.dtype, np.number):
        return None
    return ~np.isfinite(arr).reshape(len(arr), int(np.prod(arr.shape[1:]))).all(axis=1)


def require_finite(path: PathLike, columns: dict[str, object], what: str = "column") -> None:
    """Refuse to write non-finite values: raise naming ``path``, the column and the jet count.

    ``columns`` maps output names to per-jet arrays (numpy (n_jets, ...) or awkward, jets
    first). Writers call this on everything they are about to write, before opening the output,
    so no NaN or inf (given or computed) reaches a file and no partial file is left.
    """
    for name, column in columns.items():
        bad = _non_finite_jets(column)
        if bad is not None and bad.any():
            raise JetDataError(
                f"{os.fspath(path)}: refusing to write {what} {name!r}: non-finite (NaN or inf) "
                f"for {int(bad.sum())} of {len(bad)} jets (first: jet {int(np.flatnonzero(bad)[0])}"
                "); nothing was written"
            )
