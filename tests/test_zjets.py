"""jetfm.data.zjets: Pythia 8 Z -> mu mu + jets events, their cuts, seeds, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from jetfm.cli import main
from jetfm.data.events import MUON_MASS, read_events
from jetfm.data.pythia import SelectionError
from jetfm.data.zjets import ZJetsConfig, _isolate, generate_zjets
from jetfm.physics import kinematics as kin

M_Z = 91.1876  # GeV, PDG
# three streams of 120, 120 and 60 events: several streams, so workers = 2 runs two at once
CONFIG = ZJetsConfig(events_per_stream=120)


@pytest.fixture(scope="module")
def events():
    return generate_zjets(300, CONFIG, seed=5, workers=1, progress=False)


def p4(objects: np.ndarray) -> tuple[np.ndarray, ...]:
    return kin.ptetaphim_to_p4(objects[..., 0], objects[..., 1], objects[..., 2],
                               objects[..., 3])


def test_dimuon_mass_peaks_at_the_z(events):
    px, py, pz, e = (c.sum(axis=1) for c in p4(events.muons))
    m_mumu = kin.mass(e, px, py, pz)
    assert np.median(np.abs(m_mumu - M_Z)) < 3.0  # Breit-Wigner half width 1.25 GeV + QED
    assert np.all(events.muons[..., 3] == MUON_MASS)
    assert np.all(events.muons[:, 0, 0] >= events.muons[:, 1, 0])


def test_jets_pass_the_cuts_and_are_pt_ordered(events):
    _, mask = events.objects()
    jets, real = events.jets, mask[:, 2:]
    assert np.all(jets[real][:, 0] > 20.0) and np.all(np.abs(jets[real][:, 1]) < 4.5)
    assert np.all(np.diff(jets[..., 0], axis=1)[real[:, 1:]] <= 0)
    assert np.all(jets[~real] == 0)
    i, j = np.triu_indices(events.max_jets, k=1)
    dr = kin.delta_r(jets[:, i, 1], jets[:, i, 2], jets[:, j, 1], jets[:, j, 2])
    assert np.all(dr[real[:, i] & real[:, j]] > 0.4)
    assert np.all(jets[real][:, 3] > 0)  # hadron-level jets have a mass
    assert np.count_nonzero(events.n_jets >= 2) >= 10  # Z + jet: several multi-jet events


def test_counts_in_meta_add_up(events):
    cuts = events.meta["cuts"]
    assert cuts["events"]["kept"] == len(events) == events.meta["n_events"] == 300
    assert cuts["events"]["processed"] == 300 + sum(cuts["events"]["removed"].values())
    assert cuts["jets"]["kept"] == int(events.n_jets.sum())
    assert cuts["jets"]["clustered"] == cuts["jets"]["kept"] + sum(
        cuts["jets"]["removed"].values())
    assert events.meta["config"]["hard_process"] == "zjet" and events.meta["seed"] == 5


def test_same_seed_same_events_for_any_worker_count_and_prefix(events):
    two = generate_zjets(300, CONFIG, seed=5, workers=2, progress=False)
    assert np.array_equal(two.muons, events.muons) and np.array_equal(two.jets, events.jets)
    assert two.meta["cuts"] == events.meta["cuts"]
    fewer = generate_zjets(130, CONFIG, seed=5, progress=False)
    assert np.array_equal(fewer.jets, events.jets[:130])
    other = generate_zjets(130, CONFIG, seed=6, progress=False)
    assert not np.array_equal(other.muons, fewer.muons)


def test_muon_acceptance_and_jet_maximum_are_counted():
    config = ZJetsConfig(muon_eta_max=1.0, max_jets=1)
    events = generate_zjets(60, config, seed=2, progress=False)
    assert np.all(np.abs(events.muons[..., 1]) <= 1.0)
    assert events.max_jets == 1 and np.all(events.n_jets <= 1)
    cuts = events.meta["cuts"]["events"]
    removed = cuts["removed"]
    assert removed["no mu+ mu- pair with |eta| <= 1"] > 30  # most Z muons are forward
    assert removed["more than 1 jets"] > 0
    assert cuts["processed"] == 60 + sum(removed.values())


def test_close_jets_drop_the_softer_of_each_pair_against_kept_jets():
    # event 0: jet 1 is 0.3 from jet 0 (dropped); jet 2 is 0.3 from jet 1 but 0.6 from jet 0
    # (kept: jet 1 is gone); event 1: two jets 0.41 apart (both kept)
    eta = np.array([0.0, 0.3, 0.6, 1.0, 1.41])
    phi = np.array([3.0, 3.0, 3.0, -3.1, -3.1])
    event = np.array([0, 0, 0, 1, 1])
    rank = np.array([0, 1, 2, 0, 1])
    keep = _isolate(eta, phi, rank, event, 2, 0.4)
    assert keep.tolist() == [True, False, True, True, True]
    wrapped = _isolate(np.zeros(2), np.array([3.1, -3.1]), np.array([0, 1]), np.zeros(2, int),
                       1, 0.4)
    assert wrapped.tolist() == [True, False]  # Delta phi wraps: 0.083 apart


def test_config_checks_and_the_endless_loop_guard():
    with pytest.raises(ValueError, match="hard_process"):
        ZJetsConfig(hard_process="ttbar")
    with pytest.raises(ValueError, match="pthat_min"):
        ZJetsConfig(hard_process="inclusive", pthat_min=20.0)
    with pytest.raises(ValueError, match="jet_r"):
        ZJetsConfig(jet_r=0)
    line = ZJetsConfig(pthat_min=35).pythia_lines(7)
    assert "PhaseSpace:pTHatMin = 35.0" in line and "Random:seed = 7" in line
    assert not any("pTHat" in s for s in ZJetsConfig(hard_process="inclusive").pythia_lines(1))
    assert "TimeShower:QEDshowerByL = off" in line and "HadronLevel:all = on" in line
    other = ZJetsConfig(qed_shower=True, hadronization=False).pythia_lines(1)
    assert not any("QEDshower" in s for s in other) and "HadronLevel:all = off" in other
    impossible = ZJetsConfig(muon_pt_min=6000.0, max_events_without_accept=300)
    with pytest.raises(SelectionError, match="no event passed"):
        generate_zjets(5, impossible, progress=False)


# ------------------------------------------------------------------ CLI
def test_cli_generate_zjets_writes_events_and_reports(tmp_path, capsys):
    assert main(["generate", "--process", "zjets", "--n-events", "40", "--seed", "3",
                 "--out-dir", str(tmp_path)]) == 0
    events = read_events(tmp_path / "zjets.h5")
    assert len(events) == 40 and events.meta["seed"] == 3
    out = " ".join(capsys.readouterr().out.split())
    assert "zjets: 40 events" in out and "events per jet multiplicity: 0:" in out
    assert f"events (Z -> mu mu, zjet): kept 40 / {events.meta['cuts']['events']['processed']}" \
        in out


@pytest.mark.parametrize("argv, message", [
    (["--process", "zjets", "top"], "cannot be combined"),
    (["--process", "zjets", "--pt-min", "30"], "--pt-min: options of the jet processes"),
    (["--process", "zjets", "--n-jets", "50"], "--n-jets: options of the jet processes"),
    (["--process", "top", "--n-events", "30"], "--n-events: options of --process zjets"),
])
def test_cli_refuses_mixing_zjets_with_jet_processes(tmp_path, capsys, argv, message):
    assert main(["generate", *argv, "--out-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
