"""JetNet HDF5: a file in the Zenodo layout reads back to the values written."""

from __future__ import annotations

import logging

import awkward as ak
import h5py
import numpy as np
import pytest

from jetfm.data import JetDataError, class_index
from jetfm.data.jetnet import read_jetnet

COUNTS = np.array([1, 2, 30, 5])


def _write(path, n_slots=30, counts=COUNTS, jet_type_column=None):
    """Random particles: returns (path, etarel, phirel, ptrel, jet_features) as written."""
    rng = np.random.default_rng(11)
    n = len(counts)
    pf = np.zeros((n, n_slots, 4), np.float32)
    for i, c in enumerate(counts):
        ptrel = np.sort(rng.dirichlet(np.ones(c)))[::-1]
        pf[i, :c] = np.stack(
            [rng.normal(0, 0.1, c), rng.normal(0, 0.1, c), ptrel, np.ones(c)], axis=1
        )
    jf = np.stack(
        [rng.uniform(900, 1100, n), rng.uniform(-2, 2, n), rng.uniform(50, 200, n), counts], axis=1
    ).astype(np.float32)
    if jet_type_column is not None:
        jf = np.concatenate([np.asarray(jet_type_column, np.float32)[:, None], jf], axis=1)
    with h5py.File(path, "w") as f:
        f["particle_features"] = pf
        f["jet_features"] = jf
    return str(path), pf, jf


def test_reads_values_written(tmp_path):
    path, pf, jf = _write(tmp_path / "t.hdf5")
    batch = read_jetnet(path)
    np.testing.assert_array_equal(batch.n_particles, COUNTS)
    np.testing.assert_array_equal(batch.label, class_index("Tbqq"))
    mask = pf[..., 3] > 0
    jet_pt, jet_eta = jf[:, 0].astype(np.float64), jf[:, 1].astype(np.float64)
    ptrel = np.where(mask, pf[..., 2], 0)
    np.testing.assert_allclose(ak.flatten(batch.pt), (ptrel * jet_pt[:, None])[mask], rtol=1e-12)
    eta = pf[..., 0].astype(np.float64) + jet_eta[:, None]
    np.testing.assert_allclose(ak.flatten(batch.eta), eta[mask], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ak.flatten(batch.phi), pf[..., 1][mask], rtol=1e-9, atol=1e-12)
    assert ak.all(np.abs(batch.mass) < 1e-4 * batch.particles["energy"])  # massless
    np.testing.assert_array_equal(batch.extra["jet_nparticles"], COUNTS)
    np.testing.assert_array_equal(batch.extra["jet_mass"], jf[:, 2])
    # the constituents' pt sums to the jet pt (ptrel sums to 1 in this fixture)
    np.testing.assert_allclose(ak.sum(batch.pt, axis=1), jet_pt, rtol=1e-5)
    part = read_jetnet(path, entry_start=1, entry_stop=3)
    np.testing.assert_array_equal(part.entry, [1, 2])
    np.testing.assert_array_equal(part.n_particles, [2, 30])


@pytest.mark.parametrize(
    ("name", "cls"),
    [("g.hdf5", "QCD_gluon"), ("q150.hdf5", "QCD_quark"), ("w.hdf5", "Wqq"), ("z.hdf5", "Zqq")],
)
def test_type_from_file_name(tmp_path, name, cls):
    path, _, _ = _write(tmp_path / name, n_slots=150 if "150" in name else 30)
    np.testing.assert_array_equal(read_jetnet(path).label, class_index(cls))


def test_type_column_and_override(tmp_path):
    path, _, _ = _write(tmp_path / "mixed.hdf5", jet_type_column=[0, 1, 2, 4])
    names = ["QCD_gluon", "QCD_quark", "Tbqq", "Zqq"]
    np.testing.assert_array_equal(read_jetnet(path).label, [class_index(n) for n in names])
    other, _, _ = _write(tmp_path / "jets.hdf5")
    np.testing.assert_array_equal(read_jetnet(other).label, -1)  # no type: unlabelled
    np.testing.assert_array_equal(read_jetnet(other, jet_type="w").label, class_index("Wqq"))
    with pytest.raises(JetDataError, match=r"jets\.hdf5: unknown JetNet jet type 'x'"):
        read_jetnet(other, jet_type="x")


def test_bad_files(tmp_path, caplog):
    with h5py.File(tmp_path / "g.hdf5", "w") as f:
        f["particle_features"] = np.zeros((2, 30, 3))
        f["jet_features"] = np.zeros((2, 4))
    with pytest.raises(JetDataError, match=r"g\.hdf5: dataset 'particle_features' has shape"):
        read_jetnet(tmp_path / "g.hdf5")
    with h5py.File(tmp_path / "q.hdf5", "w") as f:
        f["particle_features"] = np.zeros((2, 30, 4))
    with pytest.raises(JetDataError, match=r"q\.hdf5: no dataset 'jet_features'"):
        read_jetnet(tmp_path / "q.hdf5")
    path, _, _ = _write(tmp_path / "t.hdf5", counts=np.array([3, 0, 2]))
    with pytest.raises(JetDataError, match=r"t\.hdf5: 1 jet\(s\) with zero particles"):
        read_jetnet(path)
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        np.testing.assert_array_equal(read_jetnet(path, skip_invalid=True).entry, [0, 2])
    assert "zero particles: 1" in caplog.text
