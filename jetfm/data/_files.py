"""Helpers shared by the format readers: path lists, file checks and jet validation."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

import h5py

from jetfm.data.batch import JetBatch, JetDataError

log = logging.getLogger("jetfm.data")

PathLike = str | os.PathLike[str]
Paths = PathLike | Sequence[PathLike]


def as_paths(paths: Paths) -> list[str]:
    """One path or a sequence of paths as a list of strings; each file must exist."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out = [os.fspath(p) for p in paths]
    if not out:
        raise JetDataError("no input files given")
    for path in out:
        if not os.path.isfile(path):
            raise JetDataError(f"{path}: no such file")
    return out


def require_keys(path: str, available: Iterable[str], wanted: Iterable[str], what: str) -> None:
    """Raise naming the file and the missing ``what`` (branches, datasets, columns)."""
    present = set(available)
    missing = [k for k in wanted if k not in present]
    if missing:
        raise JetDataError(f"{path}: missing {what} {missing}; found {sorted(present)[:20]}")


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
