"""jetfm's own Parquet format: a lossless dump of a :class:`~jetfm.data.JetBatch`.

One row per jet with the fields ``particles`` (the ragged particle records, dtypes kept),
``label``, ``source``, ``entry`` and, if the batch has extras, the record ``extra``. The
file's key-value metadata (``AWKWARD_ATTRS``, written from ``ak.Array.attrs``) holds the
class list, the jetfm version and ``source_files``. A file written with another class list
is refused, since its label indices would mean other classes.

Only ``particles`` (with the four-momentum fields) is required: without ``label`` the jets are
unlabelled, without ``source``/``entry`` this file is their source, particle fields unknown
to this jetfm are skipped with one WARNING line. Extras keep their layout: flat or fixed-size
columns come back as numpy arrays, ragged ones as awkward arrays. The writer refuses a batch
holding a NaN or inf (naming the column and the number of jets) before writing anything.
"""

from __future__ import annotations

import os

import awkward as ak
import numpy as np

import jetfm
from jetfm.atomic import atomic_path
from jetfm.data._files import (
    as_paths,
    log,
    require_finite,
    require_keys,
    require_parquet_kind,
    validated,
)
from jetfm.data.batch import MOMENTUM_FIELDS, OPTIONAL_PARTICLE_FIELDS, JetBatch, JetDataError
from jetfm.data.classes import CLASSES

COLUMNS: tuple[str, ...] = ("particles", "label", "source", "entry")
REQUIRED: tuple[str, ...] = ("particles",)


def _extra_column(column: ak.Array) -> np.ndarray | ak.Array:
    """numpy if the stored column is regular (scalar or fixed size), else awkward (ragged)."""
    if column.ndim == 1 or column.layout.purelist_isregular:
        try:
            return ak.to_numpy(column)
        except (ValueError, TypeError):  # missing values: keep awkward
            return column
    return column


def parquet_table(batch: JetBatch) -> ak.Array:
    """The table :func:`write_parquet` writes (one record per jet, metadata in ``attrs``).

    Packed (``ak.to_packed``): pyarrow refuses views of strided numpy data, which a batch
    built from columns of a 2-d array holds.
    """
    columns = {
        "particles": batch.particles,
        "label": batch.label,
        "source": batch.source,
        "entry": batch.entry,
    }
    if batch.extra:
        columns["extra"] = ak.zip(dict(batch.extra), depth_limit=1)
    table = ak.to_packed(ak.zip(columns, depth_limit=1))
    table.attrs["jetfm"] = {
        "version": jetfm.__version__,
        "classes": list(CLASSES),
        "source_files": list(batch.source_files),
    }
    return table


def write_parquet(batch: JetBatch, path: str | os.PathLike[str]) -> None:
    """Write every part of ``batch`` (particles, labels, extras, provenance) to ``path``.

    Raises :class:`JetDataError` before writing if a particle field or extra holds NaN/inf.
    """
    require_finite(path, {f: batch.particles[f] for f in batch.fields}, "particle field")
    require_finite(path, batch.extra, "extra")
    table = parquet_table(batch)
    with atomic_path(path) as tmp:
        ak.to_parquet(table, tmp)


def read_parquet(
    path: str | os.PathLike[str],
    *,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    skip_invalid: bool = False,
) -> JetBatch:
    """Read a file written by :func:`write_parquet`; the round trip is exact, dtypes included.

    ``entry_start:entry_stop`` selects rows (jets) of the file. A file or range with no jets
    gives an empty batch; invalid jets raise :class:`JetDataError` (or are dropped and counted
    with ``skip_invalid``).
    """
    (path,) = as_paths(path)
    try:
        table = ak.from_parquet(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise JetDataError(f"{path}: not a readable Parquet file ({err})") from err
    meta = table.attrs.get("jetfm")
    if meta is None:
        require_parquet_kind(path, "jets")
        raise JetDataError(f"{path}: no 'jetfm' key in the Parquet metadata (not a jetfm file)")
    if list(meta.get("classes", [])) != list(CLASSES):
        raise JetDataError(
            f"{path}: written with the class list {meta.get('classes')} (jetfm "
            f"{meta.get('version')}), this jetfm uses {list(CLASSES)}"
        )
    require_keys(path, table.fields, REQUIRED, "columns")
    rows = range(len(table))[slice(entry_start, entry_stop)]
    table = table[rows.start : rows.stop]
    n = len(table)
    particles = table["particles"]
    if particles.ndim != 2 or not particles.fields:
        raise JetDataError(f"{path}: column 'particles' has type {particles.type}")
    require_keys(path, particles.fields, MOMENTUM_FIELDS, "particle fields")
    known = [f for f in particles.fields if f in MOMENTUM_FIELDS + OPTIONAL_PARTICLE_FIELDS]
    if len(known) < len(particles.fields):
        log.warning("%s: skipping particle fields unknown to this jetfm: %s", path,
                    sorted(set(particles.fields) - set(known)))
        particles = particles[known]
    extra = table["extra"] if "extra" in table.fields else None
    source_files = tuple(meta.get("source_files", ()))

    def integers(name: str) -> np.ndarray:
        if name not in table.fields:
            log.info("%s: no column %r", path, name)
            return np.full(n, -1, dtype=np.int64)
        return ak.to_numpy(table[name]).astype(np.int64)

    label, source, entry = integers("label"), integers("source"), integers("entry")
    unknown = source < 0  # jets made in memory (e.g. sampled by a model): this file is their source
    if unknown.any():
        source_files += (str(path),)
        source[unknown] = len(source_files) - 1
        entry[unknown] = np.arange(rows.start, rows.stop)[unknown]
    batch = JetBatch(
        particles,
        label=label,
        extra={k: _extra_column(extra[k]) for k in extra.fields} if extra is not None else {},
        source_files=source_files,
        source=source,
        entry=entry,
    )
    return validated(batch, path, skip_invalid)
