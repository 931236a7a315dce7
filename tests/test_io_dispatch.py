"""Format dispatch: suffix and HDF5-content detection, concatenation, clear refusals."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pandas as pd
import pytest
from io_jets import random_jets

from jetfm.data import JetDataError
from jetfm.data.io import FORMATS, detect_format, read_jets, write_jets


def test_detects_every_format(tmp_path):
    jets = random_jets(4, seed=21)
    write_jets(jets, tmp_path / "a.root")
    write_jets(jets, tmp_path / "a.parquet")
    write_jets(jets, tmp_path / "a.h5")
    with h5py.File(tmp_path / "t.hdf5", "w") as f:
        f["particle_features"] = np.zeros((1, 30, 4))
        f["jet_features"] = np.zeros((1, 4))
    pd.DataFrame({"E_0": [1.0]}).to_hdf(tmp_path / "top.h5", key="table")
    np.savez(tmp_path / "QG_jets.npz", X=np.zeros((1, 2, 4)), y=np.zeros(1))
    found = {
        name: detect_format(tmp_path / name)
        for name in ("a.root", "a.parquet", "a.h5", "t.hdf5", "top.h5", "QG_jets.npz")
    }
    assert found == {
        "a.root": "jetclass",
        "a.parquet": "parquet",
        "a.h5": "aspen",
        "t.hdf5": "jetnet",
        "top.h5": "toptagging",
        "QG_jets.npz": "quarkgluon",
    }
    assert {n for n, f in FORMATS.items() if f.write} == {"jetclass", "parquet", "aspen"}


def test_several_formats_concatenate(tmp_path, caplog):
    a, b = random_jets(3, seed=22), random_jets(5, seed=23)
    write_jets(a, tmp_path / "a.root")
    write_jets(b, tmp_path / "b.h5")
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        both = read_jets([tmp_path / "a.root", tmp_path / "b.h5"])
    assert "'genpart_pt'" in caplog.text and "'pid'" in caplog.text
    assert "'jet_pt'" not in caplog.text
    assert set(both.fields) == set(a.fields) - {"pid"}
    assert set(both.extra) == {"jet_pt", "jet_eta", "jet_phi", "jet_sdmass"}
    assert both.source_files == (str(tmp_path / "a.root"), str(tmp_path / "b.h5"))
    np.testing.assert_array_equal(both.source, [0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(both.entry, [0, 1, 2, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(both.label, np.concatenate([a.label, np.full(5, -1)]))
    np.testing.assert_allclose(both.jet_pt, np.concatenate([a.jet_pt, b.jet_pt]), rtol=1e-5)


def test_refusals(tmp_path):
    jets = random_jets(2, seed=24)
    (tmp_path / "jets.csv").write_text("px,py\n")
    with pytest.raises(JetDataError, match=r"jets\.csv: unknown file type '\.csv'"):
        read_jets(tmp_path / "jets.csv")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["images"] = np.zeros(3)
    with pytest.raises(JetDataError, match=r"other\.h5: HDF5 file with keys \['images'\]"):
        read_jets(tmp_path / "other.h5")
    with pytest.raises(JetDataError, match=r"format 'jetnet' is read-only"):
        write_jets(jets, tmp_path / "x.h5", fmt="jetnet")
    with pytest.raises(JetDataError, match=r"unknown format 'csv'"):
        write_jets(jets, tmp_path / "x.csv", fmt="csv")
    with pytest.raises(JetDataError, match=r"missing\.root: no such file"):
        read_jets(tmp_path / "missing.root")
