"""Parquet storage of :class:`jetfm.physics.trees.JetTrees`: one row per jet, exact round trip.

Columns: the node arrays of :data:`jetfm.physics.trees.NODE_ARRAYS` as lists (float64 momenta
[GeV], int64 indices), and the per-jet ``jet``, ``n_constituents``, ``n_inclusive`` (int64).
The file's key-value metadata ``jetfm_trees`` (JSON) holds the jet definition (algorithm,
recombination, R) and the jetfm version.
"""

from __future__ import annotations

import json
import os

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import jetfm
from jetfm.atomic import atomic_path
from jetfm.data._files import (
    TREES_META_KEY,
    as_paths,
    require_finite,
    require_keys,
    require_parquet_kind,
)
from jetfm.data.batch import JetDataError
from jetfm.physics.trees import NODE_ARRAYS, JetTrees

JET_COLUMNS: tuple[str, ...] = ("jet", "n_constituents", "n_inclusive")
METADATA_KEY = TREES_META_KEY


def write_trees(trees: JetTrees, path: str | os.PathLike[str]) -> None:
    """Write ``trees`` (node arrays, per-jet columns, jet definition) to a Parquet file.

    Raises :class:`JetDataError` before writing if a node momentum is NaN or inf (naming the
    column and the number of jets).
    """
    require_finite(path, {
        k: ak.unflatten(getattr(trees, k), trees.n_nodes) for k in NODE_ARRAYS
        if np.issubdtype(getattr(trees, k).dtype, np.floating)
    })
    offsets = pa.array(trees.offsets.astype(np.int32 if trees.offsets[-1] < 2**31 else np.int64))
    list_of = pa.ListArray if offsets.type == pa.int32() else pa.LargeListArray
    columns = {k: list_of.from_arrays(offsets, getattr(trees, k)) for k in NODE_ARRAYS}
    columns.update({k: pa.array(getattr(trees, k)) for k in JET_COLUMNS})
    meta = {
        "algorithm": trees.algorithm,
        "recombination": trees.recombination,
        "r": trees.r,
        "version": jetfm.__version__,
    }
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_trees(path: str | os.PathLike[str]) -> JetTrees:
    """Read a file written by :func:`write_trees`; raises :class:`JetDataError` naming the file
    for unreadable files, missing columns or the ``jetfm_trees`` metadata, or broken indices."""
    (path,) = as_paths(path)
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise JetDataError(f"{path}: not a readable Parquet file ({err})") from err
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        require_parquet_kind(path, "trees")
        raise JetDataError(f"{path}: no 'jetfm_trees' key in the Parquet metadata")
    meta = json.loads(raw)
    require_keys(path, table.column_names, NODE_ARRAYS + JET_COLUMNS, "columns")
    nodes = {}
    offsets = None
    for name in NODE_ARRAYS:
        column = table[name].combine_chunks()
        these = column.offsets.to_numpy().astype(np.int64)
        these -= these[0]
        if offsets is not None and not np.array_equal(these, offsets):
            raise JetDataError(f"{path}: column {name!r} has other node counts than 'px'")
        offsets = these
        nodes[name] = column.flatten().to_numpy(zero_copy_only=False)
    trees = JetTrees(
        offsets=offsets,
        **nodes,
        **{k: table[k].to_numpy().astype(np.int64) for k in JET_COLUMNS},
        algorithm=meta["algorithm"],
        recombination=meta["recombination"],
        r=float(meta["r"]),
    )
    n_nodes = np.repeat(trees.n_nodes, trees.n_nodes)
    for name in ("left", "right", "parent"):
        index = getattr(trees, name)
        if np.any((index < -1) | (index >= n_nodes)):
            raise JetDataError(f"{path}: column {name!r} has node indices outside their jet")
    return trees
