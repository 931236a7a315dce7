"""The JetGPT extrapolation study (jetfm.studies.jetgpt_extrapolation) end to end on toy
events (the Pythia source is tested in test_zjets.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_events import toy_events

from jetfm.studies import jetgpt_extrapolation as study

CONFIG = {
    "n_events": 6000, "n_max_jets": 3, "n_extrapolate": 5, "cap_below": 2,
    "model": {"dim": 16, "n_blocks": 1, "n_heads": 2, "n_mixture": 3, "bayesian": True},
    "training": {"max_steps": 12, "max_epochs": 100, "batch_size": 128, "progress": False,
                 "accelerator": "cpu"},
    "variants": [{"name": "naive", "loss": "full"}, {"name": "truncated", "loss": "truncated"},
                 {"name": "override", "loss": "override"},
                 {"name": "bootstrap", "loss": "full", "init_from": "naive",
                  "bootstrap": {"warmup_steps": 0, "refresh_every": 4, "generate": 256}}],
    "override": {"ratio": 0.3, "cap_below": 2, "n_fit_complete": 3, "n_fit_slope": 3},
    "n_draws": 2, "n_sample": 600, "sample_batch": 600,
}


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(config: study.JetGPTStudyConfig, out_dir: object) -> tuple[object, str]:
        return toy_events(config.n_events, seed=config.seed, ratio=0.4, max_jets=7), "toy"
    monkeypatch.setattr(study, "simulate", fake)


def test_split_never_trains_beyond_n_max() -> None:
    config = study.JetGPTStudyConfig(**CONFIG)
    events = toy_events(6000, seed=1, ratio=0.4, max_jets=7)
    split = study.split_events(events, config)
    assert split.train.n_jets.max() == 3 and split.val.n_jets.max() == 3
    assert np.all(split.beyond.n_jets > 3)
    assert len(split.beyond) == int((events.n_jets > 3).sum())
    counts = np.bincount(split.train.n_jets)
    assert np.all(counts[:2] <= counts[2])  # n < cap_below capped to the n = 2 count
    removed = split.removed["train"]
    n_train_raw = len(events) - int(round(0.2 * 6000)) - int(round(0.1 * 6000))
    assert len(split.train) + removed["events with more than 3 jets"] + sum(
        removed["capped (per n_jets)"].values()) == n_train_raw


def test_study_runs_and_reports_every_variant(tmp_path, toy: None) -> None:
    config = study.JetGPTStudyConfig(**CONFIG)
    summary = study.run(config, tmp_path)
    table = (tmp_path / "table.md").read_text()
    for name in ("truth", "naive", "truncated", "override", "bootstrap"):
        assert name in table
    assert "R_(4/3)" in table and "R_(5/4)" in table
    for plot in ("multiplicity", "ratios", "pt_j1_4j", "pt_sum_4j", "delta_r_j1j2_5j"):
        assert (tmp_path / "plots" / f"{plot}.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "summary.json").read_text())
    # every generated W1 carries its spread over the draws and its floor
    w1_cells = [row[k] for row in saved["table"][1:] for k in row if k.startswith("W1")]
    assert w1_cells and all(" ± " in c and c.endswith(")") for c in w1_cells)
    assert set(saved["fractions"]) == {"naive", "truncated", "override", "bootstrap"}
    for fractions in summary["fractions"].values():
        assert np.allclose(np.sum(fractions, axis=1), 1.0)
    # the pT-balance fit of the override variant is recorded
    assert set(saved["pt_balance_fit"]) == {"a", "b", "c", "d"}
    # a rerun reuses models and samples (no retraining: same files)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.glob("models/*/jetgpt.safetensors")}
    study.run(config, tmp_path)
    after = {p: p.stat().st_mtime_ns for p in tmp_path.glob("models/*/jetgpt.safetensors")}
    assert before == after and len(before) == 4


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="n_extrapolate"):
        study.JetGPTStudyConfig(**{**CONFIG, "n_extrapolate": 3})
    with pytest.raises(ValueError, match="distinct"):
        study.JetGPTStudyConfig(**{**CONFIG, "variants": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ValueError, match="unknown keys"):
        study.JetGPTStudyConfig(**{**CONFIG, "variants": [{"name": "a", "lambda": 1}]})
    with pytest.raises(ValueError, match="loss"):
        study.JetGPTStudyConfig(**{**CONFIG, "variants": [{"name": "a", "loss": "half"}]})
    with pytest.raises(ValueError, match="earlier variant"):
        study.JetGPTStudyConfig(**{**CONFIG, "variants": [
            {"name": "b", "init_from": "a"}, {"name": "a"}]})
    with pytest.raises(ValueError, match="size fields"):
        study.JetGPTStudyConfig(**{**CONFIG, "model": {"n_types": 2}})


def test_changed_training_retrains_from_scratch(tmp_path, toy: None) -> None:
    """A changed training block redoes the model from scratch: its old checkpoint (at the old
    step limit) is not resumed."""
    import torch

    one = {**CONFIG, "variants": [{"name": "naive", "loss": "full"}], "n_draws": 1}
    study.run(study.JetGPTStudyConfig(**one), tmp_path)
    ckpt = tmp_path / "models" / "naive" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 12
    fewer = {**one, "training": {**one["training"], "max_steps": 5}}
    study.run(study.JetGPTStudyConfig(**fewer), tmp_path)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 5


def test_bad_blocks_fail_before_any_work(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: object) -> None:
        raise AssertionError("simulated despite a bad config")
    monkeypatch.setattr(study, "simulate", never)
    for key, value, match in (("zjets", {"hard_process": "ttbar"}, "zjets: .*hard_process"),
                              ("override", {**CONFIG["override"], "ratio": -1}, "override"),
                              ("training", {"max_stepz": 3}, "training.*max_stepz"),
                              ("variants", [], "at least one"), ("seed", -1, "seed")):
        with pytest.raises(ValueError, match=match):
            study.JetGPTStudyConfig(**{**CONFIG, key: value})
