"""Top-tagging landscape pandas HDF5: a file in the real layout reads back to its values."""

from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pandas as pd
import pytest
from io_jets import random_jets

from jetfm.data import JetDataError, class_index
from jetfm.data.toptagging import read_toptagging

COUNTS = np.array([1, 2, 40, 7, 200, 3])
SIGNAL = np.array([1, 0, 1, 1, 0, 0])


def _frame(counts=COUNTS, signal=SIGNAL) -> tuple[pd.DataFrame, np.ndarray]:
    """The 200-slot table and the (n_jets, 200, 4) E, PX, PY, PZ it holds."""
    jets = random_jets(len(counts), seed=9, counts=counts).sort_by_pt()
    values = jets.to_padded(("energy", "px", "py", "pz"), n_max=200, dtype=np.float64).values
    columns = {}
    for i in range(200):
        for k, c in enumerate(("E", "PX", "PY", "PZ")):
            columns[f"{c}_{i}"] = values[:, i, k].astype(np.float32)
    for k, c in enumerate(("truthE", "truthPX", "truthPY", "truthPZ")):
        columns[c] = values.sum(axis=1)[:, k]
    columns["ttv"] = np.zeros(len(counts), np.int64)
    columns["is_signal_new"] = signal
    return pd.DataFrame(columns, index=np.arange(100, 100 + len(counts))), values


def test_reads_values_written(tmp_path):
    frame, values = _frame()
    path = str(tmp_path / "train.h5")
    frame.to_hdf(path, key="table")
    batch = read_toptagging(path)
    np.testing.assert_array_equal(batch.n_particles, COUNTS)
    mask = np.any(values != 0, axis=-1)
    for k, field in enumerate(("energy", "px", "py", "pz")):
        want = values[..., k].astype(np.float32).astype(np.float64)[mask]
        np.testing.assert_array_equal(ak.flatten(batch.particles[field]), want)
    np.testing.assert_array_equal(batch.label, np.where(SIGNAL == 1, class_index("Tbqq"), 0))
    np.testing.assert_array_equal(batch.extra["truth_energy"], values.sum(axis=1)[:, 0])
    assert set(batch.extra) == {"truth_energy", "truth_px", "truth_py", "truth_pz", "ttv"}
    np.testing.assert_array_equal(batch.entry, np.arange(6))  # row position, not pandas index
    part = read_toptagging(path, entry_start=2, entry_stop=5)
    np.testing.assert_array_equal(part.entry, [2, 3, 4])
    np.testing.assert_array_equal(part.n_particles, COUNTS[2:5])


def test_table_format_file(tmp_path):
    frame, _ = _frame()
    path = str(tmp_path / "table.h5")
    frame.to_hdf(path, key="table", format="table")
    np.testing.assert_array_equal(read_toptagging(path, entry_start=-2).entry, [4, 5])


def test_bad_files(tmp_path, caplog):
    frame, _ = _frame()
    wrong_key = str(tmp_path / "key.h5")
    frame.to_hdf(wrong_key, key="jets")
    with pytest.raises(JetDataError, match=r"key\.h5: no pandas key 'table'.*jets"):
        read_toptagging(wrong_key)
    no_label = str(tmp_path / "nolabel.h5")
    frame.drop(columns="is_signal_new").to_hdf(no_label, key="table")
    np.testing.assert_array_equal(read_toptagging(no_label).label, -1)  # unlabelled
    no_px = str(tmp_path / "nopx.h5")
    frame.drop(columns="PX_3").to_hdf(no_px, key="table")
    with pytest.raises(JetDataError, match=r"nopx\.h5: missing momentum columns \['PX_3'\]"):
        read_toptagging(no_px)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"nonsense" * 100)
    with pytest.raises(JetDataError, match=r"garbage\.h5: not a readable pandas HDF5 file"):
        read_toptagging(garbage)

    frame.loc[101, "PX_1"] = np.nan
    frame.loc[103, ["E_0", "PX_0", "PY_0", "PZ_0"]] = 0.0  # jet 3: a null particle, kept
    frame.loc[100, [f"{c}_0" for c in ("E", "PX", "PY", "PZ")]] = 0.0  # jet 0 now empty
    bad = str(tmp_path / "bad.h5")
    frame.to_hdf(bad, key="table")
    with pytest.raises(JetDataError, match=r"bad\.h5: 1 jet\(s\) with non-finite px"):
        read_toptagging(bad)
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        kept = read_toptagging(bad, skip_invalid=True)
    np.testing.assert_array_equal(kept.entry, [2, 3, 4, 5])
    np.testing.assert_array_equal(kept.n_particles, [40, 7, 200, 3])
    assert kept.particles[1, 0].tolist() == {"px": 0, "py": 0, "pz": 0, "energy": 0}
    assert "non-finite px: 1" in caplog.text and "zero particles: 1" in caplog.text
