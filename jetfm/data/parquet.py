"""jetfm's own Parquet format: a lossless dump of a :class:`~jetfm.data.JetBatch`.

One row per jet with the fields ``particles`` (the ragged particle records, dtypes kept),
``label``, ``source``, ``entry`` and, if the batch has extras, the record ``extra``. The
file's key-value metadata (``AWKWARD_ATTRS``, written from ``ak.Array.attrs``) holds the
class list, the jetfm version and ``source_files``. A file written with another class list
is refused, since its label indices would mean other classes.
"""

from __future__ import annotations

import os

import awkward as ak
import numpy as np

import jetfm
from jetfm.atomic import atomic_path
from jetfm.data._files import as_paths, require_keys, validated
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import CLASSES

COLUMNS: tuple[str, ...] = ("particles", "label", "source", "entry")


def write_parquet(batch: JetBatch, path: str | os.PathLike[str]) -> None:
    """Write every part of ``batch`` (particles, labels, extras, provenance) to ``path``."""
    columns = {
        "particles": batch.particles,
        "label": batch.label,
        "source": batch.source,
        "entry": batch.entry,
    }
    if batch.extra:
        columns["extra"] = ak.zip(dict(batch.extra), depth_limit=1)
    table = ak.zip(columns, depth_limit=1)
    table.attrs["jetfm"] = {
        "version": jetfm.__version__,
        "classes": list(CLASSES),
        "source_files": list(batch.source_files),
    }
    with atomic_path(path) as tmp:
        ak.to_parquet(table, tmp)


def read_parquet(path: str | os.PathLike[str], *, skip_invalid: bool = False) -> JetBatch:
    """Read a file written by :func:`write_parquet`; the round trip is exact, dtypes included."""
    (path,) = as_paths(path)
    try:
        table = ak.from_parquet(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise JetDataError(f"{path}: not a readable Parquet file ({err})") from err
    meta = table.attrs.get("jetfm")
    if meta is None:
        raise JetDataError(f"{path}: no 'jetfm' key in the Parquet metadata (not a jetfm file)")
    if list(meta.get("classes", [])) != list(CLASSES):
        raise JetDataError(
            f"{path}: written with the class list {meta.get('classes')} (jetfm "
            f"{meta.get('version')}), this jetfm uses {list(CLASSES)}"
        )
    require_keys(path, table.fields, COLUMNS, "columns")
    extra = table["extra"] if "extra" in table.fields else None
    source_files = tuple(meta["source_files"])
    source = ak.to_numpy(table["source"]).astype(np.int64)
    entry = ak.to_numpy(table["entry"]).astype(np.int64)
    unknown = source < 0  # jets made in memory (e.g. sampled by a model): this file is their source
    if unknown.any():
        source_files += (str(path),)
        source[unknown] = len(source_files) - 1
        entry[unknown] = np.flatnonzero(unknown)
    batch = JetBatch(
        table["particles"],
        label=ak.to_numpy(table["label"]),
        extra={k: ak.to_numpy(extra[k]) for k in extra.fields} if extra is not None else {},
        source_files=source_files,
        source=source,
        entry=entry,
    )
    return validated(batch, path, skip_invalid)
