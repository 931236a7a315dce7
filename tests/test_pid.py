"""PDG id -> charge and particle-type flags."""

import numpy as np
import pytest

from jetfm.data.pid import charge_from_pid, particle_type_flags


def test_charges_from_pdg_tables():
    pid = np.array([211, -211, 321, 2212, -2212, 22, 130, 2112, 11, -11, 13, -13, 3312])
    expected = np.array([1, -1, 1, 1, -1, 0, 0, 0, -1, 1, -1, 1, -1], dtype=np.float32)
    np.testing.assert_array_equal(charge_from_pid(pid), expected)


def test_exactly_one_flag_per_particle():
    pid = np.array([[211, 22, 130], [11, -13, 2112], [1, 2, -321]])
    flags = particle_type_flags(pid)
    total = sum(flags.values())
    np.testing.assert_array_equal(total, np.ones_like(total))
    assert flags["is_charged_hadron"][0, 0] == 1 and flags["is_charged_hadron"][2, 2] == 1
    assert flags["is_photon"][0, 1] == 1 and flags["is_photon"][2, 1] == 1  # CMS HF EM
    assert flags["is_neutral_hadron"][0, 2] == 1 and flags["is_neutral_hadron"][2, 0] == 1
    assert flags["is_electron"][1, 0] == 1 and flags["is_muon"][1, 1] == 1


def test_invalid_pdg_id_is_an_error():
    with pytest.raises(ValueError, match="PDG id"):
        charge_from_pid(np.array([99999999]))
