"""AspenOpenJets HDF5: exact round trip, truncation count, PDG flags, slices, bad input."""

from __future__ import annotations

import logging

import awkward as ak
import h5py
import numpy as np
import pytest
from io_jets import assert_same_batch, random_jets, with_value

from jetfm.data import JetBatch, JetDataError, aspen
from jetfm.data.aspen import IP_COLUMNS, JET_COLUMNS, PF_COLUMNS, read_aspen, write_aspen
from jetfm.physics.observables import softdrop_mass

COUNTS = np.array([1, 2, 12, 7, 30, 2, 1, 19])


@pytest.fixture(scope="module")
def jets() -> JetBatch:
    batch = random_jets(len(COUNTS), seed=7, counts=COUNTS, label=False)
    batch.particles = ak.with_field(
        batch.particles, ak.full_like(batch.particles["charge"], 0.75), "puppi_weight"
    )
    return batch


def _pf(path, pf, jets=None):
    with h5py.File(path, "w") as f:
        f["PFCands"] = pf
        f["jet_kinematics"] = np.ones((len(pf), 4), np.float32) if jets is None else jets
    return str(path)


def test_round_trip_exact(tmp_path, jets):
    path = str(tmp_path / "aoj.h5")
    assert write_aspen(jets, path) == 0
    back = read_aspen(path)
    expected = jets.sort_by_pt()
    for field in jets.fields:
        dtype = np.int64 if field == "pid" else np.float32
        want = ak.values_astype(expected.particles[field], dtype)
        if field in IP_COLUMNS:  # stored in cm as float32, read in mm as float64
            cm = ak.values_astype(expected.particles[field] / 10.0, np.float32)
            want = ak.values_astype(cm, np.float64) * 10.0
        assert ak.array_equal(back.particles[field], want, dtype_exact=True), field
    np.testing.assert_array_equal(back.label, -1)
    np.testing.assert_array_equal(back.entry, np.arange(len(COUNTS)))
    np.testing.assert_array_equal(back.extra["jet_pt"], jets.jet_pt.astype(np.float32))
    np.testing.assert_array_equal(back.extra["jet_sdmass"], softdrop_mass(jets).astype(np.float32))
    with h5py.File(path) as f:
        assert f["PFCands"].shape == (len(COUNTS), 150, len(PF_COLUMNS))
        assert f["jet_kinematics"].shape == (len(COUNTS), 4)
    again = str(tmp_path / "again.h5")
    write_aspen(back, again)
    back2 = read_aspen(again)
    back2.source_files = back.source_files
    assert_same_batch(back2, back)


def test_truncation_count_keeps_hardest(tmp_path, jets, caplog):
    path = str(tmp_path / "short.h5")
    with caplog.at_level(logging.INFO, logger="jetfm.data"):
        dropped = write_aspen(jets, path, n_max=10)
    assert dropped == int(np.sum(np.maximum(COUNTS - 10, 0))) == 2 + 20 + 9
    assert f"dropped {dropped}" in caplog.text
    back = read_aspen(path)
    np.testing.assert_array_equal(back.n_particles, np.minimum(COUNTS, 10))
    hardest = ak.sort(jets.pt, axis=1, ascending=False)[:, :10]
    np.testing.assert_allclose(ak.flatten(back.pt), ak.flatten(hardest), rtol=1e-6)
    # jet_kinematics describe the full jet, not the truncated one
    np.testing.assert_array_equal(back.extra["jet_pt"], jets.jet_pt.astype(np.float32))


def test_pdg_flags_with_cms_pseudo_ids(tmp_path):
    pid = np.array([211, -11, 13, 22, 130, 1, 2])
    charge = np.array([1, 1, -1, 0, 0, 0, 0])
    pf = np.zeros((1, 150, 11), np.float32)
    pf[0, :7, 0] = np.arange(1, 8)  # px
    pf[0, :7, 3] = np.arange(1, 8)  # E
    pf[0, :7, 8] = charge
    pf[0, :7, 9] = pid
    back = read_aspen(_pf(tmp_path / "pid.h5", pf))
    p = back.particles[0]
    np.testing.assert_array_equal(p["pid"], pid)
    np.testing.assert_array_equal(p["is_charged_hadron"], [1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(p["is_electron"], [0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(p["is_muon"], [0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(p["is_photon"], [0, 0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(p["is_neutral_hadron"], [0, 0, 0, 0, 1, 1, 0])


def test_slices_and_global_range(tmp_path, jets, monkeypatch):
    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    write_aspen(jets, a)
    write_aspen(jets[:5], b)
    whole = read_aspen([a, b])
    monkeypatch.setattr(aspen, "SLICE", 3)
    assert_same_batch(read_aspen([a, b]), whole)
    part = read_aspen([a, b], entry_start=6, entry_stop=11)
    assert_same_batch(part, whole[6:11])
    np.testing.assert_array_equal(part.source, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(part.entry, [6, 7, 0, 1, 2])


def test_bad_files(tmp_path, jets):
    with pytest.raises(JetDataError, match=r"none\.h5: no such file"):
        read_aspen(tmp_path / "none.h5")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n" + b"0" * 500)
    with pytest.raises(JetDataError, match=r"garbage\.h5: not a readable HDF5 file"):
        read_aspen(garbage)
    wrong = _pf(tmp_path / "wrong.h5", np.zeros((3, 150, 4), np.float32))
    with pytest.raises(JetDataError, match=r"wrong\.h5: dataset 'PFCands' has shape \(3, 150, 4\)"):
        read_aspen(wrong)
    with h5py.File(tmp_path / "nopf.h5", "w") as f:
        f["jet_kinematics"] = np.zeros((3, 4))
    with pytest.raises(JetDataError, match=r"nopf\.h5: no dataset 'PFCands'"):
        read_aspen(tmp_path / "nopf.h5")


def test_optional_jet_kinematics(tmp_path, jets, caplog):
    """jet_kinematics absent or of the wrong length: skipped with one line, particles read."""
    path = str(tmp_path / "aoj.h5")
    write_aspen(jets, path)
    with h5py.File(path) as f:
        pf = f["PFCands"][:]
    for name, kin in (("short.h5", np.zeros((2, 4))), ("nokin.h5", None)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="jetfm.data"):
            back = read_aspen(_pf(tmp_path / name, pf, kin) if kin is not None else _nokin(
                tmp_path / name, pf))
        assert back.extra == {} and len(back) == len(COUNTS)
        np.testing.assert_array_equal(back.n_particles, COUNTS)
        assert len(caplog.records) == 1 and "'jet_kinematics'" in caplog.text


def _nokin(path, pf):
    with h5py.File(path, "w") as f:
        f["PFCands"] = pf
    return str(path)


def test_impact_parameters_cm_to_mm(tmp_path):
    """AOJ stores d0/dz in cm; a JetBatch holds mm. The write-back restores the file's values."""
    pf = np.zeros((2, 150, 11), np.float32)
    pf[0, :2, :4] = [[10, 0, 5, 12], [5, 1, 0, 6]]  # px, py, pz, E [GeV]
    pf[1, :1, :4] = [[0, 20, 1, 21]]
    pf[0, :2, 4:8] = [[0.0123, 0.0011, -0.0456, 0.0022], [-0.3, 0.01, 0.25, 0.02]]  # cm
    pf[1, 0, 4:8] = [1e-4, 3e-5, -2e-4, 4e-5]
    pf[..., 8][pf[..., 3] > 0] = 1  # charge
    pf[..., 9][pf[..., 3] > 0] = 211  # pid
    pf[..., 10][pf[..., 3] > 0] = 1  # PUPPI weight
    path = _pf(tmp_path / "aoj.h5", pf)
    back = read_aspen(path)
    for k, name in enumerate(IP_COLUMNS):
        got = ak.to_numpy(ak.flatten(back.particles[name]))
        stored = np.concatenate([pf[0, :2, 4 + k], pf[1, :1, 4 + k]]).astype(np.float64)
        np.testing.assert_array_equal(got, stored * 10.0)  # mm
    np.testing.assert_allclose(back.particles["d0val"][0, 0], 0.123, rtol=1e-6)
    again = str(tmp_path / "again.h5")
    write_aspen(back, again)
    with h5py.File(again) as f:
        np.testing.assert_array_equal(f["PFCands"][:], pf)  # exact, in cm


def test_invalid_jets(tmp_path, jets, caplog):
    bad = with_value(jets, 3, "energy", -5.0)
    bad = with_value(bad, 5, "pz", np.nan)
    bad.extra = {k: np.zeros(len(bad), np.float32) for k in JET_COLUMNS}
    path = str(tmp_path / "bad.h5")
    with pytest.raises(JetDataError, match=r"bad\.h5: refusing to write .*PFCands\[pz\].* 1 of 8"):
        write_aspen(bad, path)
    write_aspen(with_value(bad, 5, "pz", 1.0), path)
    with h5py.File(path, "r+") as f:  # jet 6 becomes an all-padding (zero-particle) jet
        f["PFCands"][6] = 0
        pf = f["PFCands"][5]
        pf[np.argmax(pf[:, 2] == 1.0), 2] = np.nan  # the NaN another tool might have written
        f["PFCands"][5] = pf
    with pytest.raises(JetDataError, match=r"bad\.h5: 1 jet\(s\) with non-finite pz"):
        read_aspen(path)
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        kept = read_aspen(path, skip_invalid=True)
    np.testing.assert_array_equal(kept.entry, [0, 1, 2, 4, 7])
    for text in ("negative energy: 1", "non-finite pz: 1", "zero particles: 1", "kept 5 / 8"):
        assert text in caplog.text


def test_what_the_layout_cannot_hold_is_named(tmp_path, jets, caplog):
    """Tester defect 3: labels and genpart_* extras were dropped by the HDF5 writer silently."""
    labelled = random_jets(5, seed=3)  # labels, no puppi_weight, flags derivable from pid
    labelled.extra = {"genpart_pt": np.arange(5.0), "jet_pt": labelled.jet_pt}
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        write_aspen(labelled, tmp_path / "labelled.h5")
    (line,) = [r.getMessage() for r in caplog.records]
    assert "labelled.h5" in line and "labels of 5 jets not stored" in line
    assert "extras ['genpart_pt'] not stored" in line
    assert "['puppi_weight'] written as placeholders" in line and "particle fields" not in line
    back = read_aspen(tmp_path / "labelled.h5")
    np.testing.assert_array_equal(back.label, -1)  # what the line announced
    # flags without pid (as read from JetClass) are lost; absent columns become placeholders
    bare = labelled[:]
    bare.label[:] = -1
    bare.extra = {}
    bare.particles = bare.particles[["px", "py", "pz", "energy", "is_photon"]]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        write_aspen(bare, tmp_path / "bare.h5")
    (line,) = [r.getMessage() for r in caplog.records]
    assert "particle fields ['is_photon'] not stored" in line and "labels" not in line
    assert "'d0val', 'd0err', 'dzval', 'dzerr', 'charge', 'pid', 'puppi_weight'] written as" in line
    # an AOJ batch is stored whole: no line
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jetfm.data"):
        write_aspen(jets, tmp_path / "whole.h5")
        write_aspen(read_aspen(tmp_path / "whole.h5"), tmp_path / "again.h5")
    assert caplog.records == []
