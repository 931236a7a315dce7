"""Every reader and writer on awkward inputs in every format (files from tests/awkward_files.py).

Each file gives a JetBatch or a JetDataError naming the file; never another exception.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from awkward_files import EXPECTED, N_JETS, write_awkward_files

from jetfm.data import JetBatch, JetDataError, read_jets, write_jets
from jetfm.data.batch import MOMENTUM_FIELDS
from jetfm.data.jetclass import iter_jetclass

KEYS = sorted(EXPECTED)
# Batches of every kind of content (a writer takes ~0.2 s, so not every file is written back).
WRITE_BACK = [
    "jetclass/zero_jets", "aspen/zero_jets", "jetclass/small_jets",
    "jetclass/zero_pt_and_null", "aspen/zero_pt_and_null", "jetclass/jagged_optional",
    "jetclass/missing_optional", "quarkgluon/small_jets", "toptagging/no_label_no_truth",
    "parquet/ragged_extras",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return write_awkward_files(tmp_path_factory.mktemp("awkward"))


def _finite(batch: JetBatch) -> bool:
    return all(bool(ak.all(np.isfinite(batch.particles[f]))) for f in MOMENTUM_FIELDS)


def test_every_format_and_case_is_written(files):
    formats = {key.split("/")[0] for key in files}
    assert formats == {"jetclass", "aspen", "jetnet", "toptagging", "quarkgluon", "parquet"}
    for fmt in formats:
        for case in ("zero_jets", "small_jets", "zero_pt_and_null", "nan_momenta", "inf_momenta"):
            assert f"{fmt}/{case}" in files
    assert set(files) == set(EXPECTED)


@pytest.mark.parametrize("key", KEYS)
def test_read(files, key):
    path = str(files[key])
    if EXPECTED[key] == "error":
        with pytest.raises(JetDataError) as err:
            read_jets(path)
        message = str(err.value)
        assert path in message and ":1" in message  # the file and the bad jet's entry
        assert "non-finite" in message and ("px" in message or "energy" in message
                                            or "pz" in message)
        assert "skip_invalid=True" in message and "--skip-invalid" in message
        kept = read_jets(path, skip_invalid=True)  # the bad jet dropped, the others kept
        np.testing.assert_array_equal(kept.entry, [0, 2])
        assert _finite(kept)
        return
    batch = read_jets(path)
    assert isinstance(batch, JetBatch)
    assert len(batch) == N_JETS[key] == (0 if EXPECTED[key] == "empty" else 3)
    assert _finite(batch)
    assert batch.source_files == (path,) or len(batch) == 0 or path in batch.source_files


@pytest.mark.parametrize("key", KEYS)
def test_selection_that_leaves_no_jets(files, key):
    """A range past the last jet gives an empty batch, for any file (bad jets not selected)."""
    batch = read_jets(str(files[key]), entry_start=N_JETS[key], entry_stop=None)
    assert len(batch) == 0 and batch.n_particles.shape == (0,)
    if N_JETS[key]:  # the first jet alone is fine in every file (the bad ones are jet 1)
        assert len(read_jets(str(files[key]), entry_start=0, entry_stop=1)) == 1


@pytest.mark.parametrize("key", [k for k in KEYS if k.startswith("jetclass/")])
def test_iter_jetclass(files, key):
    path = str(files[key])
    if EXPECTED[key] == "error":
        with pytest.raises(JetDataError, match=path):
            list(iter_jetclass(path, step_size=2))
        return
    chunks = list(iter_jetclass(path, step_size=2))
    assert [len(c) for c in chunks] == ([2, 1] if N_JETS[key] else [])
    if chunks:
        whole = read_jets(path)
        assert ak.array_equal(JetBatch.concatenate(chunks).particles, whole.particles)


@pytest.mark.parametrize("fmt", ["jetclass", "aspen", "parquet"])
@pytest.mark.parametrize("key", WRITE_BACK)
def test_write_back(files, tmp_path, key, fmt):
    """Every writer writes what every reader accepts (0 jets included), or refuses cleanly."""
    batch = read_jets(str(files[key]))
    if fmt == "jetclass" and np.any(batch.label == -1):
        batch.label[:] = 0 if np.all(batch.label == -1) else np.maximum(batch.label, 0)
    out = tmp_path / f"out.{ {'jetclass': 'root', 'aspen': 'h5', 'parquet': 'parquet'}[fmt] }"
    write_jets(batch, out)  # zero-pT and null particles included: every column is finite
    back = read_jets(str(out))
    assert len(back) == len(batch)
    assert _finite(back)
    if fmt != "aspen":  # (the AOJ layout names what it cannot hold: test_io_aspen)
        # nothing dropped, nothing invented: the same fields, labels and extras come back
        assert set(back.fields) == set(batch.fields)
        np.testing.assert_array_equal(back.label, batch.label)
        computed = {"jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_nparticles",
                    "jet_sdmass", "jet_tau1", "jet_tau2", "jet_tau3", "jet_tau4"}
        assert set(batch.extra) <= set(back.extra)
        assert set(back.extra) - set(batch.extra) <= (computed if fmt == "jetclass" else set())


def test_preprocessing_drops_zero_pt_and_null_particles(files):
    """log pT of a pT = 0 particle is -inf: the particle is dropped and counted, never fed on."""
    from jetfm.data.transforms import FeatureTransform, Preprocessing

    batch = read_jets(str(files["jetclass/zero_pt_and_null"]))  # 2 + 2 + (1 + 1) pT = 0
    prep = Preprocessing([FeatureTransform("log_pt"), FeatureTransform("pt")], n_max=8)
    values, mask, reports = prep.apply(batch)
    assert np.isfinite(values).all()
    np.testing.assert_array_equal(mask.sum(axis=1), [4, 4, 4])
    assert reports[0].removed["non-finite log_pt"] == 4 and reports[0].n_after == 12


def test_feature_ranges_of_zero_pt_and_empty_files(files):
    from jetfm.data.summary import feature_ranges

    rows = feature_ranges(read_jets(str(files["aspen/zero_pt_and_null"])))
    assert all(np.isfinite(row[2:]).all() for row in rows), rows
    # the 2 zero-pT and 2 null particles are left out (eta_rel at the 1e5 cap) and counted
    assert rows[0][0] == "pt (4 particles with pT = 0 left out)"
    ranges = {r[0].split(" (")[0]: r for r in rows}
    assert ranges["pt"][2] > 0 and max(abs(ranges["eta_rel"][2]), ranges["eta_rel"][4]) < 1
    empty = feature_ranges(read_jets(str(files["aspen/zero_jets"])))
    assert all(np.isnan(row[2:]).all() for row in empty)
