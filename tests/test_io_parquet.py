"""jetfm Parquet: lossless round trip (dtypes, extras, provenance) and refused files."""

from __future__ import annotations

import json
import logging
import os

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
from io_jets import assert_same_batch, random_jets, with_value

import jetfm
from jetfm.data import CLASSES, JetBatch, JetDataError
from jetfm.data.parquet import parquet_table, read_parquet, write_parquet


@pytest.fixture
def jets() -> JetBatch:
    batch = random_jets(7, seed=3, counts=[1, 2, 9, 4, 25, 2, 1])
    batch.label[0] = -1
    batch.extra = {
        "truth_match": np.arange(7, dtype=np.int32),
        "jet_sdmass": np.linspace(1, 2, 7, dtype=np.float32),
        "pair": np.arange(14.0).reshape(7, 2),
    }
    batch.source_files = ("a.root", "b.root")
    batch.source = np.array([0, 0, 1, 1, 1, 0, 1])
    batch.entry = np.array([10, 11, 0, 1, 2, 12, 3])
    return batch


def test_round_trip_exact(tmp_path, jets):
    path = str(tmp_path / "jets.parquet")
    write_parquet(jets, path)
    back = read_parquet(path)
    assert_same_batch(back, jets)
    assert back.extra["pair"].shape == (7, 2)
    assert back.particles["pid"].layout.content.dtype == np.int64
    meta = json.loads(pq.read_metadata(path).metadata[b"AWKWARD_ATTRS"])["jetfm"]
    assert meta["classes"] == list(CLASSES) and meta["version"] == jetfm.__version__


def test_round_trip_without_extras(tmp_path):
    batch = random_jets(3, seed=4)
    batch.source_files, batch.source = ("pythia8:qcd:seed=4",), np.zeros(3, dtype=np.int64)
    path = str(tmp_path / "plain.parquet")
    write_parquet(batch, path)
    assert_same_batch(read_parquet(path), batch)


def test_jets_without_provenance_get_the_file_as_source(tmp_path):
    batch = random_jets(4, seed=5)
    batch.source_files, batch.source = (), np.full(4, -1)
    path = str(tmp_path / "generated.parquet")
    write_parquet(batch, path)
    back = read_parquet(path)
    assert back.source_files == (path,)
    assert [back.source_of(i) for i in range(4)] == [f"{path}:{i}" for i in range(4)]


def test_other_class_list_refused(tmp_path, jets):
    path = str(tmp_path / "old.parquet")
    write_parquet(jets, path)
    table = ak.from_parquet(path)
    table.attrs["jetfm"] = {**table.attrs["jetfm"], "classes": ["QCD", "Tbqq"]}
    ak.to_parquet(table, path)
    with pytest.raises(JetDataError, match=r"old\.parquet: written with the class list"):
        read_parquet(path)


def test_foreign_garbage_and_incomplete_files(tmp_path, jets):
    foreign = str(tmp_path / "foreign.parquet")
    ak.to_parquet(ak.Array({"x": [1, 2]}), foreign)
    with pytest.raises(JetDataError, match=r"foreign\.parquet: no 'jetfm' key"):
        read_parquet(foreign)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 nonsense" * 50)
    with pytest.raises(JetDataError, match=r"garbage\.parquet: not a readable Parquet file"):
        read_parquet(garbage)
    incomplete = str(tmp_path / "incomplete.parquet")
    write_parquet(jets, incomplete)
    table = ak.from_parquet(incomplete)
    ak.to_parquet(table[["particles", "label"]], incomplete)
    back = read_parquet(incomplete)  # provenance: this file, entries in order
    np.testing.assert_array_equal(back.entry, np.arange(len(jets)))
    assert {back.source_of(i) for i in (0, 5)} == {f"{incomplete}:0", f"{incomplete}:5"}
    ak.to_parquet(table[["label", "source"]], incomplete)
    with pytest.raises(JetDataError, match=r"incomplete\.parquet: missing columns \['particles'\]"):
        read_parquet(incomplete)
    with pytest.raises(JetDataError, match=r"none\.parquet: no such file"):
        read_parquet(tmp_path / "none.parquet")


def test_invalid_jets(tmp_path, jets, caplog):
    path = str(tmp_path / "bad.parquet")
    bad = with_value(jets, 2, "py", np.nan)
    with pytest.raises(JetDataError, match=r"bad\.parquet: refusing to write particle field 'py'"):
        write_parquet(bad, path)
    assert not os.path.exists(path)
    ak.to_parquet(parquet_table(bad), path)  # the file another tool might have written
    with pytest.raises(JetDataError, match=r"bad\.parquet: 1 jet\(s\) with non-finite py"):
        read_parquet(path)
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        kept = read_parquet(path, skip_invalid=True)
    np.testing.assert_array_equal(kept.entry, [10, 11, 1, 2, 12, 3])
    assert "non-finite py: 1" in caplog.text
