"""Read and write jets in any supported format, chosen from the file name (or ``fmt``).

Suffixes: ``.root`` -> ``jetclass``, ``.parquet`` -> ``parquet``, ``.npz`` -> ``quarkgluon``,
``.h5`` / ``.hdf5`` -> by content: a dataset ``PFCands`` -> ``aspen``, ``particle_features``
-> ``jetnet``, a pandas key ``table`` -> ``toptagging``. A new ``.h5`` file is written as
``aspen`` (the only writable HDF5 format).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from jetfm.atomic import file_digest
from jetfm.data._files import Paths, as_paths, concatenate_common, open_hdf5
from jetfm.data.aspen import read_aspen, write_aspen
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.jetclass import read_jetclass, write_jetclass
from jetfm.data.jetnet import read_jetnet
from jetfm.data.parquet import read_parquet, write_parquet
from jetfm.data.quarkgluon import read_quarkgluon
from jetfm.data.toptagging import read_toptagging


@dataclass(frozen=True)
class Format:
    """A file format: its suffixes, reader, writer (None: read-only) and a description."""

    name: str
    suffixes: tuple[str, ...]
    read: Callable[..., JetBatch]
    write: Callable[..., Any] | None
    description: str


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("jetclass", (".root",), read_jetclass, write_jetclass, "JetClass ROOT TTree"),
        Format("parquet", (".parquet",), read_parquet, write_parquet, "jetfm Parquet (lossless)"),
        Format("aspen", (".h5", ".hdf5"), read_aspen, write_aspen, "AspenOpenJets HDF5"),
        Format("jetnet", (".h5", ".hdf5"), read_jetnet, None, "JetNet HDF5"),
        Format("toptagging", (".h5",), read_toptagging, None, "top-tagging pandas HDF5"),
        Format("quarkgluon", (".npz",), read_quarkgluon, None, "energyflow quark/gluon npz"),
    )
}
_HDF5_KEYS: dict[str, str] = {
    "PFCands": "aspen",
    "particle_features": "jetnet",
    "table": "toptagging",
}


def detect_format(path: str | os.PathLike[str], *, for_writing: bool = False) -> str:
    """Format name of ``path`` from its suffix (HDF5 files: from their contents)."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".h5", ".hdf5"):
        if for_writing:
            return "aspen"
        (path,) = as_paths(path)
        with open_hdf5(path) as file:
            keys = list(file.keys())
        for key in keys:
            if key in _HDF5_KEYS:
                return _HDF5_KEYS[key]
        raise JetDataError(
            f"{path}: HDF5 file with keys {keys}; expected one of {list(_HDF5_KEYS)} "
            "(AspenOpenJets, JetNet, top tagging)"
        )
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt.name
    known = sorted({s for f in FORMATS.values() for s in f.suffixes})
    raise JetDataError(f"{path}: unknown file type {suffix!r}; known suffixes {known}")


def _format(name: str) -> Format:
    if name not in FORMATS:
        raise JetDataError(f"unknown format {name!r}; formats are {list(FORMATS)}")
    return FORMATS[name]


def read_jets(paths: Paths, fmt: str | None = None, **kwargs: Any) -> JetBatch:
    """Read one or several files (formats may differ) into one batch.

    ``kwargs`` (``skip_invalid``, ``entry_start``, ...) are passed to the reader of each file.
    Files of different formats keep only the particle fields and extras they all have; what
    is left out is logged at WARNING level.
    """
    files = as_paths(paths)
    batches = [
        _format(fmt or detect_format(path)).read(path, **kwargs)
        for path in tqdm(files, desc="reading", unit="file", disable=len(files) < 2)
    ]
    return concatenate_common(batches, f"reading {len(files)} files")


def write_jets(batch: JetBatch, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write ``batch`` to ``path`` in ``fmt`` (default: from the suffix)."""
    name = fmt or detect_format(path, for_writing=True)
    writer = _format(name).write
    if writer is None:
        writable = [f.name for f in FORMATS.values() if f.write is not None]
        raise JetDataError(f"{path}: format {name!r} is read-only; writable: {writable}")
    writer(batch, path)


def check_distinct_files(paths: Sequence[str | os.PathLike[str]]) -> None:
    """``ValueError`` naming two of ``paths`` that are the same file (through a link or another
    spelling) or copies of one (the same bytes: the same SHA-256 digest): its jets would count
    twice, and could land in both a training and a test set."""
    seen: dict[Path, str] = {}
    for path in paths:
        key = Path(path).resolve()
        if key in seen:
            raise ValueError(f"{seen[key]} and {path} are the same file: give each file once")
        seen[key] = str(path)
    contents: dict[str, str] = {}
    for path in paths:
        if not Path(path).is_file():
            continue  # the reader names a missing file
        digest = file_digest(path)
        if digest in contents:
            raise ValueError(f"{contents[digest]} and {path} hold the same bytes (copies of one "
                             "file): their jets would count twice, and the same jet could land "
                             "in both the training and the test set; give each file once")
        contents[digest] = str(path)
