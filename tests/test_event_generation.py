"""The event-generation study (jetfm.studies.event_generation): config checks, the split, the
observables and JetGPT's likelihood Jacobian against independent calculations, and the whole
study on toy events (outputs, reuse of finished stages, a changed entry redoing its cells)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance
from toy_events import toy_events

from jetfm.data.events import MUON_MASS, Events
from jetfm.metrics.two_sample import classifier_two_sample_auc
from jetfm.models.jetgpt_inputs import EventPreprocessing
from jetfm.physics.kinematics import ptetaphim_to_p4
from jetfm.report import format_with_error
from jetfm.studies import event_generation as study
from jetfm.studies.event_generation import (
    EventGenerationConfig,
    classifier_features,
    jetgpt_log_jacobian,
    observables,
    split_events,
)

TRAINING = {"max_steps": 3, "max_epochs": 100, "batch_size": 16, "progress": False,
            "accelerator": "cpu"}
GENERATORS = [
    {"name": "lgatr", "kind": "cfm", "training": TRAINING, "solver": "midpoint", "steps": 2,
     "nll_steps": 1, "model": {"velocity": "lgatr", "num_blocks": 1, "num_heads": 2,
                               "hidden_mv_channels": 4, "hidden_s_channels": 4}},
    {"name": "transformer", "kind": "cfm", "training": TRAINING, "steps": 2, "nll_steps": 1,
     "model": {"velocity": "transformer", "num_blocks": 1, "num_heads": 2, "dim": 8}},
    {"name": "gpt", "kind": "jetgpt", "training": TRAINING,
     "model": {"dim": 8, "n_blocks": 1, "n_heads": 2, "n_mixture": 2}},
]


def config(**changes) -> EventGenerationConfig:
    values = {"n_events": 3000, "multiplicities": [1, 2], "sizes": [40], "n_eval": 30,
              "n_nll": 10, "n_bootstrap": 2, "classifier_iter": 5, "threads": 1,
              "generators": GENERATORS, **changes}
    return EventGenerationConfig(**values)


def toy(n: int = 3000) -> Events:
    return toy_events(n, seed=4, ratio=0.6, max_jets=4)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, message", [
    ({"generators": [{"name": "a", "kind": "mlp"}]}, "kind 'mlp'"),
    ({"generators": [{"name": "a", "kind": "cfm", "steps": 0}]}, "steps"),
    ({"generators": [{"name": "a", "kind": "cfm", "sampler": "rk4"}]}, "unknown keys"),
    ({"generators": [{"name": "a", "kind": "cfm", "model": {"velocity": "gnn"}}]}, "velocity"),
    ({"generators": [{"name": "a", "kind": "jetgpt", "model": {"n_types": 2}}]}, "n_types"),
    ({"generators": [GENERATORS[0], GENERATORS[0]]}, "more than once"),
    ({"generators": [{"name": "../x", "kind": "cfm"}]}, "names a folder"),
    ({"n_nll": 40}, "n_nll"),
    ({"multiplicities": [1, 11]}, "max_jets"),
    ({"sizes": [10, 10]}, "twice"),
    ({"sizes": []}, "non-empty"),
    ({"device": "tpu"}, "device"),
    ({"zjets": {"jet_r": "wide"}}, "jet_r"),
])
def test_config_errors_name_the_key(changes, message):
    with pytest.raises(ValueError, match=message):
        config(**changes)


@pytest.mark.parametrize("preset", ["event_generation_tiny", "event_generation_cpu",
                                    "event_generation_gpu"])
def test_presets_load_and_simulate_enough_events(preset):
    """Each preset's simulated sample holds the events its split needs at the multiplicity
    fractions of the built-in source (jetfm.data.zjets: R_(1/0) = 2.87, then 0.207 per jet)."""
    cfg = study.load_config(preset)
    weights = np.cumprod([1.0, 2.87] + [0.207] * 9)
    fraction = weights / weights.sum()
    assert cfg.n_events * fraction[max(cfg.multiplicities)] > 1.05 * cfg.n_needed


# ----------------------------------------------------------------------------- split
def test_split_is_disjoint_nested_and_counted():
    events = toy()
    cfg = config(sizes=[20, 40])
    splits, data = split_events(events, cfg)
    counts = np.bincount(events.n_jets)
    for n, split in splits.items():
        assert data["selected"][f"{n}j"]["with_n_jets"] == counts[n]
        assert data["selected"][f"{n}j"]["other_multiplicities_dropped"] == \
            len(events) - counts[n]
        parts = [split.reference, split.floor, split.val, split.train]
        assert [len(p) for p in parts] == [30, 30, 4, 40]
        assert all(np.all(p.n_jets == n) for p in parts)
        keys = [tuple(np.round(p.muons[:, 0, 0], 9)) for p in parts]
        assert len(set().union(*keys)) == sum(len(k) for k in keys)  # disjoint
        small_train, small_val = split.training(20, cfg.n_val(20))
        assert np.array_equal(small_train.muons, split.train.muons[:20])  # nested
        assert len(small_val) == 2
    with pytest.raises(ValueError, match="raise n_events"):
        split_events(toy(300), cfg)


# ----------------------------------------------------------------------------- observables
def test_observables_against_an_independent_calculation():
    muons = np.array([[[45.0, 0.0, 0.0, MUON_MASS], [40.0, 0.5, -np.pi + 0.1, MUON_MASS]]])
    jets = np.array([[[60.0, 1.0, 1.0, 8.0], [30.0, -1.5, -2.0, 4.0]]])
    events = Events(muons, jets, np.array([2]))
    obs = observables(events, 2)

    def mass(a, b):
        px, py, pz, e = (u + v for u, v in zip(ptetaphim_to_p4(*a), ptetaphim_to_p4(*b),
                                                strict=True))
        return math.sqrt(e**2 - px**2 - py**2 - pz**2)

    assert obs["m_mumu"][0] == pytest.approx(mass(muons[0, 0, [0, 1, 2, 3]],
                                                  muons[0, 1, [0, 1, 2, 3]]), rel=1e-9)
    assert obs["m_j1j2"][0] == pytest.approx(mass(jets[0, 0], jets[0, 1]), rel=1e-9)
    assert obs["dr_mumu"][0] == pytest.approx(math.hypot(0.5, np.pi - 0.1))  # across +-pi
    assert obs["dr_j1j2"][0] == pytest.approx(math.hypot(2.5, 3.0))
    assert obs["dr_mu1j1"][0] == pytest.approx(math.hypot(1.0, 1.0))
    assert obs["pt_j2"][0] == 30.0 and obs["eta_mu2"][0] == 0.5 and obs["m_j1"][0] == 8.0
    assert sorted(observables(events, 1)) == sorted(
        ["pt_mu1", "eta_mu1", "pt_mu2", "eta_mu2", "pt_j1", "eta_j1", "m_j1", "m_mumu",
         "dr_mumu", "dr_mu1j1"])


def test_jetgpt_log_jacobian_matches_finite_differences():
    """log |det dx/dy| of JetGPT's generated components (standardised) w.r.t. the physical
    coordinates (muon masses and the leading muon's azimuth excluded), against a central
    finite-difference Jacobian of the preprocessing."""
    events = toy()
    two = events[events.n_jets == 2][:5]
    prep = EventPreprocessing.fit(events)
    std = np.asarray(prep.std)
    # generated (position, component) of the x = (log_pt, phi_rel, eta, log_m) sequence and
    # physical (position, column) of y = (pt, eta, phi, m)
    generated = [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2)] + [(k, c) for k in (2, 3)
                                                              for c in range(4)]
    physical = [(0, 0), (0, 1), (1, 0), (1, 2), (1, 1)] + [(k, c) for k in (2, 3)
                                                             for c in (0, 2, 1, 3)]
    types = [0, 1, 2, 2]
    for i in range(len(two)):
        base = two[i:i + 1]
        jac = np.zeros((len(generated), len(physical)))
        for col, (k, c) in enumerate(physical):
            values = []
            for sign in (1, -1):
                muons, jets = base.muons.copy(), base.jets.copy()
                target, row = (muons, k) if k < 2 else (jets, k - 2)
                step = 1e-6 * max(abs(target[0, row, c]), 1.0)
                target[0, row, c] += sign * step
                raw, _, _ = prep.raw(Events(muons, jets, base.n_jets))
                values.append(np.array([raw[0, kk, cc] / std[types[kk], cc]
                                        for kk, cc in generated]))
            jac[:, col] = (values[0] - values[1]) / (2 * step)
        expected = np.linalg.slogdet(jac)[1]
        assert jetgpt_log_jacobian(prep, base)[0] == pytest.approx(expected, abs=1e-5)


# ----------------------------------------------------------------------------- the study
@pytest.fixture
def toy_data(monkeypatch):
    events = toy()

    def simulate(config, out_dir):
        return events, "toy-digest"

    monkeypatch.setattr(study, "simulate", simulate)
    return events


def test_study_runs_reuses_and_redoes_only_what_changed(toy_data, tmp_path, monkeypatch):
    cfg = config(multiplicities=[1])
    threads = torch.get_num_threads()
    summary = study.run(cfg, tmp_path)
    assert torch.get_num_threads() == threads  # the study's threads setting is undone
    results = summary["results"]
    assert len(results) == 3 and {r["kind"] for r in results} == {"cfm", "jetgpt"}
    # the metrics, recomputed independently from the files the study wrote and its split
    split = split_events(toy_data, cfg)[0][1]
    reference, floor_events = observables(split.reference, 1), observables(split.floor, 1)
    floor_file = json.loads((tmp_path / "floors" / "1j.json").read_text())
    for key, values in reference.items():
        assert floor_file["w1"][key]["value"] == pytest.approx(
            wasserstein_distance(floor_events[key], values), rel=1e-12)
    for r in results:
        assert r["auc"]["floor"] == floor_file["auc"]["value"]
        assert set(r["w1"]) == set(reference)
        assert math.isfinite(r["nll"]["value"]) and r["nll"]["n_events"] == 10
        assert r["sampling"]["events_per_second"] > 0 and r["parameters"] > 0
        generated = study.read_events(tmp_path / "cells" / "1j" / "D40" / r["name"] /
                                      "generated.h5")
        assert np.all(generated.n_jets == 1) and len(generated) == r["n_generated"] == 30
        mine = observables(generated, 1)
        for key, w in r["w1"].items():
            assert w["floor"] == floor_file["w1"][key]["value"]
            assert w["value"] == pytest.approx(wasserstein_distance(mine[key], reference[key]),
                                               rel=1e-12)
        auc = classifier_two_sample_auc(classifier_features(split.reference, 1),
                                        classifier_features(generated, 1),
                                        n_bootstrap=cfg.n_bootstrap,
                                        max_iter=cfg.classifier_iter, seed=cfg.seed)
        assert r["auc"]["value"] == pytest.approx(auc.value, abs=1e-12)
        for key in r["w1"]:
            assert (tmp_path / "plots" / "1j" / "D40" / f"{key}.png").exists()
    table = (tmp_path / "table.md").read_text()
    assert all(g["name"] in table for g in GENERATORS)
    assert "## Z + 1 jet: W1 per marginal (floor: truth vs truth)" in table
    w1 = results[0]["w1"]["pt_mu1"]
    assert f"{w1['value']:.3g} ({w1['floor']:.2g})" in table and "pt_mu1 [GeV]" in table
    floor = json.loads((tmp_path / "floors" / "1j.json").read_text())["auc"]
    assert summary["rows"][0]["AUC floor"] == format_with_error(floor["value"], floor["error"])
    assert (tmp_path / "plots" / "1j_auc.png").exists()
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert len(saved["rows"]) == 3 and saved["floors"]["1j"]["auc"]["value"] is not None

    calls = []

    def counting(kind):
        original = study.RUNNERS[kind]

        def run(entry, *args):
            calls.append(entry["name"])
            return original(entry, *args)

        return run

    monkeypatch.setattr(study, "RUNNERS", {k: counting(k) for k in study.RUNNERS})
    plot = tmp_path / "plots" / "1j" / "D40" / "m_mumu.png"
    drawn = plot.stat().st_mtime_ns
    again = study.run(cfg, tmp_path)  # every stage reused
    assert calls == [] and plot.stat().st_mtime_ns == drawn
    assert [r["auc"] for r in again["results"]] == [r["auc"] for r in results]
    changed = [GENERATORS[0], {**GENERATORS[1], "steps": 3}, GENERATORS[2]]
    study.run(config(multiplicities=[1], generators=changed), tmp_path)
    assert calls == ["transformer"]  # its cell only; the plots are redrawn
    assert plot.stat().st_mtime_ns != drawn
