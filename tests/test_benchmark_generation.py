"""The generation benchmark end to end on the tiny preset: every generator's cell, floors from
disjoint jets, the PET sampler-steps scan, overlay plots, resume, and config errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from jetfm.cli import main
from jetfm.configs import preset
from jetfm.data.classes import class_index
from jetfm.data.io import read_jets
from jetfm.models.pet_generator import load_generator
from jetfm.studies.benchmark_generation import GenerationBenchmarkConfig, load_config

TINY = preset("benchmark_generation_tiny")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bg")
    assert main(["benchmark", "generation", "--config", str(TINY), "--out", str(out)]) == 0
    return out


def test_every_generator_is_compared_with_the_same_truth_and_a_floor(run):
    table = json.loads((run / "table.json").read_text())
    rows = table["summary"]
    assert {(r["generator"], r["class"]) for r in rows} == {
        (g, c) for g in ("PET", "OmniJet-alpha", "jet-evolution", "JetGPT")
        for c in ("Tbqq", "QCD")}
    for cell in table["cells"]:
        for cls, result in cell["classes"].items():
            assert result["n_generated"] > 0
            metrics = {(r["metric"], r["observable"]) for r in result["table"]}
            for obs in ("pt", "mass", "tau21", "tau32", "n_particles"):
                assert ("W1", obs) in metrics and ("KL", obs) in metrics
            assert ("C2ST AUC", "jet features") in metrics
            assert ("FPD(8 obs)", "jet features") in metrics
            assert {m for m, _ in metrics} >= {"FPD(EFP, jetnet)", "KPD(EFP, jetnet)",
                                               "W1(EFP, jetnet)"}
            for r in result["table"]:  # every number has its floor, from the floor sample
                assert r["floor"] is not None, (cell["name"], cls, r)
            generated = read_jets([str(run / "cells" / cell["name"] / f"generated_{cls}.parquet")])
            assert len(generated) == result["n_generated"]
    omnijet = next(c for c in table["cells"] if c["name"] == "OmniJet-alpha")
    assert omnijet["n_train"] == 40  # an entry's own budget is stated
    pet = next(c for c in table["cells"] if c["name"] == "PET")
    assert [s["steps"] for s in pet["steps_scan"]] == [2, 4]
    assert all(s["jets_per_second"] > 0 for s in pet["steps_scan"])
    jetgpt = next(c for c in table["cells"] if c["name"] == "JetGPT")
    assert jetgpt["frame"].startswith("JetGPT frame (hardest 24 particles")
    for cls, sampling in jetgpt["sampling"].items():  # overflows at n_max: cut and counted
        assert 0 <= sampling["n_overflow"] <= jetgpt["classes"][cls]["n_generated"]
        generated = read_jets([str(run / "cells" / "JetGPT" / f"generated_{cls}.parquet")])
        assert generated.n_particles.max() <= 24
        assert np.all(generated.label == class_index(cls))
    for cls in ("Tbqq", "QCD"):
        for obs in ("mass", "tau32", "n_particles"):
            assert (run / "plots" / f"overlay_{cls}_{obs}.png").stat().st_size > 0
    # the steps curve: a plot, linked from table.md
    assert (run / "plots" / "steps_PET.png").stat().st_size > 0
    assert "](plots/steps_PET.png)" in (run / "table.md").read_text()


def test_rerun_reuses_cells_and_a_changed_entry_redoes_only_its_own(run, tmp_path, capsys):
    before = json.loads((run / "table.json").read_text())
    assert main(["benchmark", "generation", "--config", str(TINY), "--out", str(run)]) == 0
    after = json.loads((run / "table.json").read_text())
    assert after["summary"] == before["summary"]
    assert "redone" not in capsys.readouterr().out
    # a copied run folder keeps its cells (data digests are keyed relative to the folder)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert main(["benchmark", "generation", "--config", str(TINY), "--out", str(copy)]) == 0
    assert "redone" not in capsys.readouterr().out
    # a changed model key retrains that cell only (its old model files are gone)
    text = TINY.read_text().replace("n_max: 24, jet_hidden", "n_max: 16, jet_hidden")
    changed = tmp_path / "changed.yaml"
    changed.write_text(text)
    assert main(["benchmark", "generation", "--config", str(changed), "--out", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "stage cells/PET: redone" in out
    assert "cells/OmniJet-alpha: redone" not in out
    assert load_generator(copy / "cells" / "PET" / "generator.safetensors").config.n_max == 16
    pet = read_jets([str(copy / "cells" / "PET" / "generated_Tbqq.parquet")])
    assert pet.n_particles.max() <= 16
    again = json.loads((copy / "table.json").read_text())
    keep = [r for r in again["summary"] if r["generator"] != "PET"]
    assert keep == [r for r in before["summary"] if r["generator"] != "PET"]


def test_splits_are_disjoint_and_nested(tmp_path):
    from jetfm.studies.benchmark_generation import load_data

    config = load_config(TINY)
    split, _ = load_data(config, tmp_path)
    for parts in split.parts.values():
        entries = {name: set(zip(b.source, b.entry, strict=True)) for name, b in parts.items()}
        names = list(entries)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                assert not entries[a] & entries[b], (a, b)
        assert len(parts["floor"]) == len(parts["roots"]) == config.n_generate
        assert len(parts["reference"]) == config.n_reference
    assert np.all(split.parts["Tbqq"]["train"].label == split.parts["Tbqq"]["train"].label[0])


@pytest.mark.parametrize(("change", "message"), [
    ({"generators": []}, "at least one entry"),
    ({"generators": [{"name": "x", "kind": "gan"}]}, "kind 'gan' is not one of"),
    ({"generators": [{"name": "x", "kind": "pet", "gpt": {}}]}, r"unknown keys \['gpt'\]"),
    ({"generators": [{"name": "x", "kind": "pet", "generator": {"dim": 3}}]}, "generator x"),
    ({"generators": [{"name": "x", "kind": "pet"}, {"name": "x", "kind": "pet"}]},
     "more than once"),
    ({"generators": [{"name": "x", "kind": "pet", "n_train": 10**9}]}, "n_train"),
    ({"classes": ["Wqq"]}, "the benchmark generates"),
    ({"classes": ["Tbqq", "Tbqq"]}, "lists a class twice"),
    ({"generators": [{"name": "../out", "kind": "pet"}]}, "names the cell's folder"),
    ({"generators": [{"name": "x", "kind": "pet", "sampler_steps": 0}]}, "sampler_steps"),
    ({"generators": [{"name": "x", "kind": "pet", "steps_scan": [4, -1]}]}, "steps_scan"),
    ({"generators": [{"name": "x", "kind": "pet", "guidance": -2}]}, "guidance"),
    ({"generators": [{"name": "x", "kind": "jetgpt", "model": {"periodic": ["phi_rel"]}}]},
     r"unknown keys \['periodic'\]"),
    ({"generators": [{"name": "x", "kind": "jetgpt", "model": {"bayesian": True}}]},
     "bayesian"),
    ({"generators": [{"name": "x", "kind": "jetgpt", "model": {"dim": 3}}]}, "generator x"),
    ({"generators": [{"name": "x", "kind": "jetgpt", "n_max": 0}]}, "n_max"),
    ({"generators": [{"name": "x", "kind": "jetgpt", "training": {"lr": -1}}]}, "lr"),
])
def test_bad_configs_are_refused_naming_the_key(change, message):
    base = {"generators": [{"name": "PET", "kind": "pet"}]}
    with pytest.raises(ValueError, match=message):
        GenerationBenchmarkConfig(**{**base, **change})
