"""OmniLearn transfer to unseen tasks on the tiny preset: joint pre-training, quark/gluon
tagging and gluon-jet generation, pre-trained vs scratch at each D, resume; parton labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jetfm.cli import main
from jetfm.configs import preset
from jetfm.data.classes import class_index
from jetfm.data.io import read_jets
from jetfm.data.quarkgluon import label_by_parton
from jetfm.studies.omnilearn_transfer import OmniLearnTransferConfig

TINY = preset("omnilearn_transfer_tiny")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ol")
    assert main(["study", "omnilearn", "--config", str(TINY), "--out", str(out)]) == 0
    return out


def test_every_cell_runs_with_floors_and_the_pretraining_is_shared(run):
    rows = json.loads((run / "table.json").read_text())["rows"]
    assert {(r["D"], r["task"], r["mode"]) for r in rows} == {
        (d, t, m) for d in (10, 20) for t in ("tagging", "generation")
        for m in ("finetune", "scratch")}
    tagging = [r for r in rows if r["task"] == "tagging"]
    generation = [r for r in rows if r["task"] == "generation"]
    assert all(r["n_test"] == 2 * 12 for r in tagging)  # quark and gluon test jets
    # the floor compares two truth samples only (floor vs reference gluon jets, in the same
    # frame): the same for every D and both modes, whatever was generated
    for obs in ("mass", "tau32", "n_particles"):
        floors = [r[f"floor_{obs}"] for r in generation]
        np.testing.assert_allclose(floors, floors[0], rtol=1e-6)  # float32 frames
    # the models differ: each mode's generator produced its own jets
    assert len({round(r["w1_mass"], 9) for r in generation}) > 1
    assert (run / "pretrain" / "generator.safetensors").exists()
    text = (run / "table.md").read_text()
    assert "quark vs gluon" in text and "QCD_gluon" in text


def test_rerun_reuses_everything(run, capsys):
    before = json.loads((run / "table.json").read_text())["rows"]
    assert main(["study", "omnilearn", "--config", str(TINY), "--out", str(run)]) == 0
    assert "redone" not in capsys.readouterr().out
    assert json.loads((run / "table.json").read_text())["rows"] == before


def test_parton_labels(run):
    qcd = read_jets([str(run / "data" / "qcd.root")])
    labelled = label_by_parton(qcd)
    pid = np.abs(qcd.extra["genpart_pid"])
    np.testing.assert_array_equal(labelled.label == class_index("QCD_gluon"), pid == 21)
    assert set(np.unique(labelled.label)) == {class_index("QCD_quark"), class_index("QCD_gluon")}
    with pytest.raises(ValueError, match="no genpart_pid"):
        label_by_parton(qcd[:3].__class__(qcd.particles[:3], label=qcd.label[:3]))
    top = read_jets([str(run / "data" / "top.root")])
    with pytest.raises(ValueError, match="not labelled QCD"):
        label_by_parton(top, "top.root")


@pytest.mark.parametrize(("change", "message"), [
    ({"sizes": []}, "sizes"),
    ({"pretraining": {"classes": ["QCD"]}}, "set by the study"),
    ({"tagging": {"backbone": "part"}}, "unknown keys"),
    ({"generation": {"generator": {}}}, "unknown keys"),
    ({"val_fraction": 1.5}, "val_fraction"),
])
def test_bad_configs_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        OmniLearnTransferConfig(**change)


@pytest.mark.parametrize(("change", "message"), [
    ({"sizes": [10, 10]}, "lists a size twice"),
    ({"sizes": 10}, "a list of whole numbers"),
    ({"tagging": 5}, "tagging: expected a mapping"),
    ({"tagging": {"head": "nonexistent"}}, "tagging: .*head"),
    ({"tagging": {"training": {"bogus": 1}}}, "tagging: .*bogus"),
    ({"pretraining": {"bogus": 1}}, "pretraining: .*bogus"),
    ({"seed": "abc"}, "seed"),
])
def test_every_block_is_checked_when_the_config_is_read(change, message):
    with pytest.raises(ValueError, match=message):
        OmniLearnTransferConfig(**change)


def test_sizes_written_as_powers_of_ten_are_read(tmp_path):
    assert OmniLearnTransferConfig(sizes=["1e2", 1000]).sizes == [100, 1000]
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    from jetfm.studies.omnilearn_transfer import load_config

    with pytest.raises(ValueError, match="holds no keys"):
        load_config(empty)


def test_parton_ids_must_be_whole_numbers(run):
    qcd = read_jets([str(run / "data" / "qcd.root")])[:4]
    qcd.extra["genpart_pid"] = np.array([1.7, 21, 2, 21])
    with pytest.raises(ValueError, match="whole-number PDG id"):
        label_by_parton(qcd)
    qcd.extra["genpart_pid"] = np.array([6, 21, 2, 21])
    with pytest.raises(ValueError, match="neither a quark"):
        label_by_parton(qcd)
