"""Pythia 8 + FastJet generator: mass peaks, substructure, cuts, truth matching, seeds, the
bound on events without an accepted jet."""

import re
from dataclasses import replace

import awkward as ak
import numpy as np
import pytest

from jetfm.data import SelectionReport, class_index
from jetfm.data.batch import PARTICLE_TYPE_FLAGS
from jetfm.data.generated import generated_files
from jetfm.data.pythia import (
    PROCESSES,
    GeneratorConfig,
    SelectionError,
    _new_pythia,
    _truth,
    generate,
    process_key,
    worker_seeds,
)
from jetfm.physics import kinematics as kin
from jetfm.physics.observables import nsubjettiness

N_JETS = 150
RESONANCE_PID = {"top": 6, "w": 24, "z": 23, "hbb": 25}


@pytest.fixture(scope="module")
def samples():
    """150 jets per class (MPI off, seed 1), generated once for this module."""
    return {p: generate(GeneratorConfig(p), N_JETS, seed=1, progress=False) for p in PROCESSES}


def _assert_same(a, b):
    assert ak.array_equal(a.particles, b.particles)
    for key in a.extra:
        np.testing.assert_array_equal(a.extra[key], b.extra[key])


@pytest.mark.parametrize(
    ("process", "low", "high"),
    [("top", 160, 190), ("w", 72, 88), ("z", 85, 100), ("hbb", 110, 135)],
)
def test_mass_peaks_where_physics_puts_them(samples, process, low, high):
    mass = samples[process][0].jet_mass
    assert low < np.median(mass) < high
    # The resonance mass lies inside the central half of the distribution (a peak, not a tail).
    nominal = {"top": 172.5, "w": 80.4, "z": 91.2, "hbb": 125.0}[process]
    q25, q75 = np.percentile(mass, [25, 75])
    assert q25 < nominal < q75


def test_z_heavier_than_w_and_qcd_mass_falling(samples):
    m_w, m_z = (np.median(samples[p][0].jet_mass) for p in ("w", "z"))
    assert 4 < m_z - m_w < 18  # m_Z - m_W = 10.8 GeV
    qcd = samples["qcd"][0].jet_mass
    assert np.median(qcd) < 110  # far below the top peak
    counts, _ = np.histogram(qcd, [50, 110, 170, 230, 290])
    assert np.all(np.diff(counts) < 0)


def test_substructure_separates_prongs(samples):
    ratios = {}
    for process, (batch, _) in samples.items():
        tau = nsubjettiness(batch, n_max=4)
        ratios[process] = (np.median(tau[:, 1] / tau[:, 0]), np.median(tau[:, 2] / tau[:, 1]))
    assert ratios["top"][1] < ratios["qcd"][1] - 0.1  # three prongs: low tau32
    for process in ("w", "z", "hbb"):
        assert ratios[process][0] < ratios["qcd"][0] - 0.15  # two prongs: low tau21


@pytest.mark.parametrize("process", list(PROCESSES))
def test_jets_pass_cuts_and_particles_are_complete(samples, process):
    batch, reports = samples[process]
    assert len(batch) == N_JETS
    assert np.all(batch.label == class_index(PROCESSES[process]))
    assert np.all((batch.jet_pt > 500) & (batch.jet_pt < 1000))
    assert np.all(np.abs(batch.jet_eta) < 2)
    assert batch.source_files == (f"pythia8:{process}:seed=1",)
    np.testing.assert_array_equal(batch.entry, np.arange(N_JETS))
    assert not any(flag.any() for flag in batch.problems().values())

    pid = ak.to_numpy(ak.flatten(batch.particles["pid"]))
    assert not np.isin(np.abs(pid), [12, 14, 16]).any()
    assert batch.particles["px"].type.content.content.primitive == "float32"
    flags = sum(ak.to_numpy(ak.flatten(batch.particles[f])) for f in PARTICLE_TYPE_FLAGS)
    np.testing.assert_array_equal(flags, 1)
    charged = ak.to_numpy(ak.flatten(batch.particles["charge"])) != 0
    assert np.all(charged[np.isin(pid, [211, -211, 321, -321, 2212, -2212])])
    assert not charged[np.isin(pid, [22, 130, 2112, 310])].any()
    for name in ("d0val", "d0err", "dzval", "dzerr"):
        assert ak.all(batch.particles[name] == 0)
    pt = batch.pt
    assert ak.all(pt[:, :-1] >= pt[:, 1:])  # pT-ordered

    (report,) = reports
    assert isinstance(report, SelectionReport)
    assert report.n_after == N_JETS
    assert report.n_before - sum(report.removed.values()) == N_JETS
    assert report.removed["pT < 500 GeV"] > 0


@pytest.mark.parametrize("process", list(RESONANCE_PID))
def test_resonance_jets_are_truth_matched(samples, process):
    batch, _ = samples[process]
    extra = batch.extra
    assert np.all(extra["truth_match"])
    assert np.all(extra["truth_max_dr"] < 0.8)
    np.testing.assert_array_equal(np.abs(extra["genpart_pid"]), RESONANCE_PID[process])
    dr = kin.delta_r(batch.jet_eta, batch.jet_phi, extra["genpart_eta"], extra["genpart_phi"])
    assert np.all(dr < 0.8)
    # The jet carries the resonance's momentum.
    assert 0.9 < np.median(batch.jet_pt / extra["genpart_pt"]) < 1.05


def _reference_top_prongs(event: dict) -> dict[int, set[tuple[float, float]]]:
    """Slow reference walking *mother* links: top index -> {(eta, phi)} of b, q, q'."""
    ids, mother = event["id"], event["mother1"]
    prongs: dict[int, set[tuple[float, float]]] = {}
    for i, pid in enumerate(ids):
        m = mother[i]
        if not 1 <= abs(pid) <= 5 or abs(ids[m]) not in (6, 24):
            continue
        top = m
        while abs(ids[top]) == 24:  # climb the W copies to the top that emitted the W
            top = mother[top]
        p = event["p"][i]
        momentum = (p["px"], p["py"], p["pz"])
        prongs.setdefault(top, set()).add(
            (round(float(kin.eta(*momentum)), 9), round(float(kin.phi(p["px"], p["py"])), 9))
        )
    return prongs


def test_top_decay_quarks_agree_with_a_slow_reference():
    prt = _new_pythia(GeneratorConfig("top"), 17).nextBatch(6)["prt"]
    truth = _truth(prt, "top")
    assert len(truth.event) == 12  # t and t~ in every event
    for e in range(len(prt)):
        event = {f: ak.to_list(prt[e][f]) for f in ("id", "mother1", "p")}
        expected = sorted(_reference_top_prongs(event).values(), key=sorted)
        rows = np.flatnonzero(truth.event == e)
        found = [
            {(round(float(a), 9), round(float(b), 9)) for a, b in zip(eta, phi, strict=True)}
            for eta, phi in zip(truth.prong_eta[rows], truth.prong_phi[rows], strict=True)
        ]
        assert sorted(found, key=sorted) == expected
        assert all(len(s) == 3 for s in expected)


def test_qcd_jets_come_from_light_partons(samples):
    batch, reports = samples["qcd"]
    pid = np.abs(batch.extra["genpart_pid"])
    assert np.isin(pid, [1, 2, 3, 21]).all()
    assert (pid == 21).any() and (pid < 4).any()
    assert "heavy-flavour parton" in reports[0].removed


def test_unmatched_top_jets_are_kept_on_request_and_miss_a_prong():
    config = GeneratorConfig("top", require_truth_match=False)
    batch, (report,) = generate(config, 120, seed=3, progress=False)
    matched = batch.extra["truth_match"]
    assert matched.any() and (~matched).any()
    assert report.removed["no truth match"] == 0
    np.testing.assert_array_equal(matched, batch.extra["truth_max_dr"] < 0.8)
    # A top jet missing one of its quarks lacks mass.
    assert np.median(batch.jet_mass[~matched]) < np.median(batch.jet_mass[matched]) - 30


def test_seeds_reproduce_and_differ(samples):
    again, _ = generate(GeneratorConfig("w"), N_JETS, seed=1, progress=False)
    _assert_same(again, samples["w"][0])
    other, _ = generate(GeneratorConfig("w"), 20, seed=2, progress=False)
    assert not np.array_equal(other.jet_pt, samples["w"][0].jet_pt[:20])


def test_two_workers_reproduce_and_split_the_work():
    config = GeneratorConfig("z", events_per_batch=40)
    first, (report,) = generate(config, 12, seed=4, workers=2, progress=False)
    second, _ = generate(config, 12, seed=4, workers=2, progress=False)
    _assert_same(first, second)
    assert len(first) == 12 and report.n_after == 12
    np.testing.assert_array_equal(first.entry, np.arange(12))
    # Worker 0 of any split draws the same stream as a single worker; worker 1 another one.
    single, _ = generate(config, 12, seed=4, workers=1, progress=False)
    _assert_same(first[:6], single[:6])
    assert not np.array_equal(first.jet_pt[6:], single.jet_pt[6:])


def test_aspen_like_source_is_smeared_unlabelled_and_reported():
    batch, reports = generate(GeneratorConfig.aspen_like(), 40, seed=2, progress=False)
    assert np.all(batch.label == -1)
    assert np.all(batch.jet_pt > 300) and np.all(np.abs(batch.jet_eta) < 2.5)
    assert batch.n_particles.max() <= 150
    assert np.all(batch.pt > 0.5)  # smearing threshold
    p4 = batch.jet_p4  # summed in float64 from float32 constituents
    assert np.all(p4[:, 3] ** 2 >= (p4[:, :3] ** 2).sum(axis=1) * (1 - 1e-6))
    names = [r.name for r in reports]
    assert any("after smearing" in n for n in names)
    assert any("at most 150" in n for n in names)
    smeared = next(r for r in reports if "after smearing" in r.name)
    assert 0 < smeared.n_removed < smeared.n_before


def test_constituent_truncation_is_exact_and_counted():
    config = replace(GeneratorConfig.aspen_like(smear=False), max_particles=None)
    full, _ = generate(config, 15, seed=5, progress=False)
    cut, reports = generate(replace(config, max_particles=25), 15, seed=5, progress=False)
    assert ak.array_equal(cut.particles, full.particles[:, :25])
    dropped = int(np.maximum(full.n_particles - 25, 0).sum())
    assert dropped > 0
    assert reports[-1].removed == {"beyond the 25 hardest": dropped}


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="unknown process 'ttbar'"):
        GeneratorConfig("ttbar")
    with pytest.raises(ValueError, match="pt_max"):
        GeneratorConfig("qcd", pt_min=500, pt_max=400)
    with pytest.raises(ValueError, match="n_jets"):
        generate(GeneratorConfig("qcd"), 0)
    with pytest.raises(ValueError, match="seed"):
        generate(GeneratorConfig("qcd"), 1, seed=-1)
    with pytest.raises(ValueError, match="Pythia rejected the setting 'Nonsense:flag = on'"):
        generate(GeneratorConfig("qcd", pythia_settings=("Nonsense:flag = on",)), 1)


def test_seeds_derive_from_seed_and_process_name_not_position():
    # Fixed numbers: a salted hash (Python's hash()) of the name would change them per run.
    assert process_key("top") == 5850167390978726374
    assert worker_seeds(1, "top", 0)[0] == 85185126
    seeds = {worker_seeds(s, p, w)[0] for s in (1, 2) for p in PROCESSES for w in (0, 1)}
    assert len(seeds) == 2 * len(PROCESSES) * 2  # every (seed, process, worker) its own stream
    assert all(1 <= s < 900_000_000 for s in seeds)  # Pythia's Random:seed range, 0 excluded


def test_cuts_nothing_passes_stop_after_a_bounded_number_of_events():
    config = GeneratorConfig("qcd", eta_max=1e-6, max_events_without_jet=40, events_per_batch=20)
    with pytest.raises(SelectionError) as info:
        generate(config, 2, seed=1, progress=False)
    message = str(info.value)
    assert message.startswith("qcd: no jet passed the selection in 40 events "
                              "(max_events_without_jet = 40; worker 0 had 0 of its 2 jets); ")
    # the selection counts: jets seen, and what each cut removed (all of them)
    counts = re.search(r"from 40 events: kept 0 / (\d+) \(removed pT < 500 GeV: (\d+), "
                       r"\|eta\| > 1e-06: (\d+)\)", message)
    assert counts is not None
    n_jets, low, forward = map(int, counts.groups())
    assert n_jets == low + forward and forward > 0


def test_configurations_are_validated_after_every_change(tmp_path):
    with pytest.raises(ValueError, match=r"pt_max \(1000.0\) must exceed pt_min \(1200"):
        replace(GeneratorConfig("top"), pt_min=1200.0)
    with pytest.raises(ValueError, match="eta_max must be a positive number, got 0"):
        GeneratorConfig("top", eta_max=0.0)
    with pytest.raises(ValueError, match="beyond the kinematic limit"):
        GeneratorConfig("top", pt_min=7000.0, pt_max=None)
    with pytest.raises(ValueError, match="max_events_without_jet must be >= 1"):
        GeneratorConfig("top", max_events_without_jet=0)
    out = tmp_path / "data"
    with pytest.raises(ValueError, match="pt_max"):
        generated_files(["qcd", "top"], 5, out, cuts={"pt_min": 1200.0})
    with pytest.raises(ValueError, match=r"unknown generator cut\(s\) \['jet_r'\]"):
        generated_files(["top"], 5, out, cuts={"jet_r": 0.4})
    with pytest.raises(ValueError, match="n_jets must be >= 1"):
        generated_files(["top"], 0, out)
    assert not out.exists()  # refused before anything was made
