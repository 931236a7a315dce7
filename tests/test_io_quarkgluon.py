"""energyflow quark/gluon npz: rapidity (not eta) and PDG masses give back the file's values."""

from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pytest

from jetfm.data import JetDataError, class_index
from jetfm.data.quarkgluon import mass_from_pid, read_quarkgluon
from jetfm.physics import kinematics as kin

PIDS = np.array([211, -211, 22, 2112, 321, -11, 130])
COUNTS = np.array([1, 2, 7, 4])


def _write(path, counts=COUNTS, y=(1, 0, 1, 0)):
    rng = np.random.default_rng(13)
    x = np.zeros((len(counts), 8, 4))
    for i, c in enumerate(counts):
        x[i, :c, 0] = rng.uniform(0.5, 50, c)
        x[i, :c, 1] = rng.uniform(-1.5, 1.5, c)
        x[i, :c, 2] = rng.uniform(0, 2 * np.pi, c)
        x[i, :c, 3] = PIDS[:c]
    np.savez_compressed(path, X=x, y=np.asarray(y, dtype=np.float64))
    return str(path), x


def test_rapidity_mass_and_labels(tmp_path):
    path, x = _write(tmp_path / "QG_jets.npz")
    batch = read_quarkgluon(path)
    mask = x[..., 0] > 0
    np.testing.assert_array_equal(batch.n_particles, COUNTS)
    np.testing.assert_allclose(ak.flatten(batch.pt), x[..., 0][mask], rtol=1e-12)
    rap = kin.rapidity(batch.particles["energy"], batch.particles["pz"])
    np.testing.assert_allclose(ak.flatten(rap), x[..., 1][mask], rtol=1e-9, atol=1e-12)
    dphi = kin.delta_phi(ak.to_numpy(ak.flatten(batch.phi)), x[..., 2][mask])
    np.testing.assert_allclose(dphi, 0, atol=1e-12)
    pion, proton_like = 0.13957039, 0.93956542  # PDG masses [GeV] of pi+ and the neutron
    masses = ak.to_numpy(ak.flatten(batch.mass))
    pid = ak.to_numpy(ak.flatten(batch.particles["pid"]))
    np.testing.assert_allclose(masses[np.abs(pid) == 211], pion, rtol=1e-6)
    np.testing.assert_allclose(masses[pid == 2112], proton_like, rtol=1e-6)
    np.testing.assert_allclose(masses[pid == 22], 0, atol=1e-6)
    # eta differs from y for massive particles: the reader did not mistake one for the other
    massive = np.abs(pid) == 211
    eta = ak.to_numpy(ak.flatten(batch.eta))
    assert np.all(np.abs(eta[massive]) > np.abs(x[..., 1][mask][massive]))
    charges = {211: 1, -211: -1, 22: 0, 2112: 0, 321: 1, -11: 1, 130: 0}
    np.testing.assert_array_equal(ak.flatten(batch.particles["charge"]), [charges[i] for i in pid])
    p = batch.particles[2]
    np.testing.assert_array_equal(p["is_photon"], [0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(p["is_electron"], [0, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(p["is_neutral_hadron"], [0, 0, 0, 1, 0, 0, 1])
    q, g = class_index("QCD_quark"), class_index("QCD_gluon")
    np.testing.assert_array_equal(batch.label, [q, g, q, g])
    np.testing.assert_array_equal(read_quarkgluon(path, entry_start=2).entry, [2, 3])


def test_unknown_pid_is_massless():
    np.testing.assert_array_equal(mass_from_pid(np.array([22, 99999999])), [0.0, 0.0])


def test_bad_files(tmp_path, caplog):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04" + b"x" * 100)
    with pytest.raises(JetDataError, match=r"garbage\.npz: not a readable \.npz file"):
        read_quarkgluon(garbage)
    _, x_ok = _write(tmp_path / "ok.npz", counts=np.array([2, 3]))
    np.savez(tmp_path / "nolabel.npz", X=x_ok)
    np.testing.assert_array_equal(read_quarkgluon(tmp_path / "nolabel.npz").label, [-1, -1])
    np.savez(tmp_path / "nox.npz", y=np.zeros(2))
    with pytest.raises(JetDataError, match=r"nox\.npz: no array 'X'"):
        read_quarkgluon(tmp_path / "nox.npz")
    np.savez(tmp_path / "shape.npz", X=np.zeros((2, 3, 3)), y=np.zeros(2))
    with pytest.raises(JetDataError, match=r"shape\.npz: array 'X' has shape \(2, 3, 3\)"):
        read_quarkgluon(tmp_path / "shape.npz")
    path, x = _write(tmp_path / "bad.npz", counts=np.array([2, 0, 3, 1]))
    x[2, 1, 0] = np.nan
    np.savez(path, X=x, y=np.array([1, 0, 1, 0]))
    with pytest.raises(JetDataError, match=r"bad\.npz: 1 jet\(s\) with non-finite px"):
        read_quarkgluon(path)
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        np.testing.assert_array_equal(read_quarkgluon(path, skip_invalid=True).entry, [0, 3])
    assert "zero particles: 1" in caplog.text and "non-finite px: 1" in caplog.text
