"""Top-tagging landscape dataset (Kasieczka et al., arXiv:1902.09914), pandas HDF5 files.

Each file holds a pandas table under the key ``table`` with one row per jet: the constituent
four-momenta ``E_i, PX_i, PY_i, PZ_i`` [GeV] for i = 0..199 (pT-ordered, zero-padded: a
padding slot is all zeros), ``is_signal_new`` (1 = top -> ``Tbqq``, 0 = QCD -> ``QCD``) and,
when present, the truth top four-momentum ``truthE, truthPX, truthPY, truthPZ`` and the
train/test/validation flag ``ttv``, kept in ``batch.extra`` as ``truth_energy, truth_px,
truth_py, truth_pz, ttv``.

Only the momentum columns are required. Without ``is_signal_new`` the jets are unlabelled
(-1, logged once); an optional column that is not numeric is skipped with one WARNING line.
Padding is the all-zero slots after the last particle (an all-zero slot before it is a null
particle and is kept).
"""

from __future__ import annotations

import os
import re

import awkward as ak
import numpy as np
import pandas as pd

from jetfm.data._files import as_paths, log, padding_mask, require_keys, validated
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import class_index

KEY = "table"
LABEL_COLUMN = "is_signal_new"
EXTRA_COLUMNS: dict[str, str] = {
    "truthE": "truth_energy",
    "truthPX": "truth_px",
    "truthPY": "truth_py",
    "truthPZ": "truth_pz",
    "ttv": "ttv",
}
_MOMENTA = (("E", "energy"), ("PX", "px"), ("PY", "py"), ("PZ", "pz"))


def _read_table(path: str, entry_start: int | None, entry_stop: int | None) -> pd.DataFrame:
    try:
        store = pd.HDFStore(path, mode="r")
    except Exception as err:  # pandas / PyTables raise several types for a damaged file
        raise JetDataError(f"{path}: not a readable pandas HDF5 file ({err})") from err
    with store:
        if KEY not in store:
            raise JetDataError(f"{path}: no pandas key {KEY!r} (keys {store.keys()})")
        try:
            storer = store.get_storer(KEY)
            n_rows = storer.nrows if storer.nrows is not None else storer.shape[0]
            rows = range(n_rows)[slice(entry_start, entry_stop)]
            table = store.select(KEY, start=rows.start, stop=rows.stop)
        except Exception as err:  # PyTables/pandas: TypeError, ValueError, ... on non-pandas data
            raise JetDataError(
                f"{path}: key {KEY!r} is not a pandas table (the top-tagging layout; written "
                f"by pandas.DataFrame.to_hdf): {type(err).__name__}: {err}"
            ) from err
    if not isinstance(table, pd.DataFrame):
        raise JetDataError(f"{path}: key {KEY!r} holds a {type(table).__name__}, not a table")
    return table.set_axis(np.arange(rows.start, rows.stop), axis=0)


def read_toptagging(
    path: str | os.PathLike[str],
    *,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    skip_invalid: bool = False,
) -> JetBatch:
    """Read one top-tagging file; rows ``entry_start:entry_stop`` of the table.

    A table or range with no rows gives an empty batch; invalid jets raise
    :class:`JetDataError` (or are dropped and counted with ``skip_invalid``).
    """
    (path,) = as_paths(path)
    table = _read_table(path, entry_start, entry_stop)
    n_slots = sum(1 for c in table.columns if re.fullmatch(r"E_\d+", str(c)))
    wanted = [f"{c}_{i}" for i in range(max(n_slots, 1)) for c, _ in _MOMENTA]
    require_keys(path, table.columns, wanted, "momentum columns")
    try:
        values = np.stack(
            [table[[f"{c}_{i}" for i in range(n_slots)]].to_numpy(np.float64)
             for c, _ in _MOMENTA],
            axis=-1,
        )  # (n_jets, n_slots, 4)
    except (TypeError, ValueError) as err:
        raise JetDataError(f"{path}: momentum columns are not numeric ({err})") from err
    mask = padding_mask(values)  # NaN rows count as particles and fail validation
    counts = mask.sum(axis=1)
    label = None
    if LABEL_COLUMN in table:
        signal = table[LABEL_COLUMN].to_numpy()
        bad = ~np.isin(signal, (0, 1))
        if bad.any():
            raise JetDataError(
                f"{path}: column {LABEL_COLUMN!r} holds values other than 0 and 1 for "
                f"{int(bad.sum())} jet(s) (first: entry {table.index[np.argmax(bad)]})"
            )
        label = np.where(signal == 1, class_index("Tbqq"), class_index("QCD"))
    else:
        log.info("%s: no column %r; its jets are unlabelled", path, LABEL_COLUMN)
    extra = {}
    for column, key in EXTRA_COLUMNS.items():
        if column in table:
            if np.issubdtype(table[column].dtype, np.number):
                extra[key] = table[column].to_numpy()
            else:
                log.warning("%s: skipping column %s of dtype %s (not numeric)", path, column,
                            table[column].dtype)
    fields = {f: ak.unflatten(values[..., k][mask], counts) for k, (_, f) in enumerate(_MOMENTA)}
    batch = JetBatch(
        ak.zip(fields),
        label=label,
        extra=extra,
        source_files=(path,),
        entry=table.index.to_numpy(),
    )
    return validated(batch, path, skip_invalid)
