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
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        both = read_jets([tmp_path / "a.root", tmp_path / "b.h5"])
    assert "'jet_tau1'" in caplog.text and "'puppi_weight'" in caplog.text  # only in one file
    assert "'jet_pt'" not in caplog.text and "'pid'" not in caplog.text
    assert set(both.fields) == set(a.fields)
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


def test_file_messages_say_what_the_path_is(tmp_path):
    """Tester defect 8: each message names the path and what it really is."""
    (tmp_path / "dir.root").mkdir()
    with pytest.raises(JetDataError, match=r"dir\.root: is a directory, not a file"):
        read_jets(tmp_path / "dir.root")
    # an npz with another array name lists the arrays it has
    np.savez(tmp_path / "foo.npz", foo=np.zeros((2, 3, 4)))
    with pytest.raises(JetDataError, match=r"foo\.npz: no array 'X' \(arrays \['foo'\]\)"):
        read_jets(tmp_path / "foo.npz")
    np.save(tmp_path / "plain.npy", np.zeros((2, 3, 4)))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    with pytest.raises(JetDataError, match=r"plain\.npz: a single ndarray, not an \.npz archive"):
        read_jets(tmp_path / "plain.npz")
    # a plain HDF5 dataset named 'table' is not the pandas top-tagging table
    with h5py.File(tmp_path / "tt.h5", "w") as f:
        f["table"] = np.zeros((3, 4))
    with pytest.raises(JetDataError, match=r"tt\.h5: key 'table' is not a pandas table"):
        read_jets(tmp_path / "tt.h5")
    pd.Series([1.0, 2.0]).to_hdf(tmp_path / "series.h5", key="table")
    with pytest.raises(JetDataError, match=r"series\.h5: key 'table' holds a Series"):
        read_jets(tmp_path / "series.h5")


def test_jetfm_parquet_files_told_apart(tmp_path):
    """Tester defect 8: `jetfm info top.tokens.parquet` said "not a jetfm file"; each jetfm
    Parquet file (jets, tokens, clustering trees) given where another is read says what it is."""
    from jetfm.data.tokens import TokenDataset, read_tokens, write_tokens
    from jetfm.data.trees_io import read_trees, write_trees
    from jetfm.physics.trees import build_trees

    jets = random_jets(3, seed=3, n_min=2, n_max=5)
    mask = np.array([[True, True, False], [True, False, False]])
    tokens = TokenDataset(np.array([[3, 4, 0], [5, 0, 0]]), mask, np.array([0, 8]),
                          {"fingerprint": "abc", "codebook_size": 8})
    paths = {"tokens": tmp_path / "top.tokens.parquet", "jets": tmp_path / "jets.parquet",
             "trees": tmp_path / "top.trees.parquet"}
    write_tokens(paths["tokens"], tokens)
    write_jets(jets, paths["jets"])
    write_trees(build_trees(jets), paths["trees"])
    readers = {"jets": read_jets, "tokens": lambda p: read_tokens(p, n_max=3),
               "trees": read_trees}
    words = {"jets": "jet", "tokens": "token", "trees": "clustering-tree"}
    for kind, path in paths.items():
        for wanted, read in readers.items():
            if wanted == kind:
                read(path)  # the right reader reads it
                continue
            with pytest.raises(JetDataError, match=rf"{path.name}: a jetfm {words[kind]} file "
                                                   rf".*not a jetfm {words[wanted]} file"):
                read(path)
    np.testing.assert_array_equal(read_tokens(paths["tokens"], 3).codes, tokens.codes)


def test_the_same_file_twice_is_refused(tmp_path):
    from jetfm.data.io import check_distinct_files

    (tmp_path / "a.root").write_bytes(b"")
    (tmp_path / "b.root").symlink_to(tmp_path / "a.root")
    check_distinct_files([tmp_path / "a.root"])
    with pytest.raises(ValueError, match="a.root and .*b.root are the same file"):
        check_distinct_files([tmp_path / "a.root", tmp_path / "b.root"])
    # a copy (other path, same bytes) is refused too: its jets could be in training and test
    (tmp_path / "c.root").write_bytes(b"jets")
    (tmp_path / "d.root").write_bytes(b"jets")
    (tmp_path / "e.root").write_bytes(b"other jets")
    check_distinct_files([tmp_path / "c.root", tmp_path / "e.root"])
    with pytest.raises(ValueError, match="c.root and .*d.root hold the same bytes"):
        check_distinct_files([tmp_path / "c.root", tmp_path / "e.root", tmp_path / "d.root"])
